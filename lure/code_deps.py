"""Code dependencies derived from the code: the static import closure of an entry module.

A module's closure is every project source file Python may execute when the module runs: the
module, every project module it imports (at module level or inside functions), the packages'
``__init__.py`` files on the way, and so on transitively. Only the project's own packages
(:data:`PROJECT_PACKAGES`) count; third-party imports are the environment's business
(requirements.txt). Dynamic imports (``importlib.import_module`` of a project module) are not
seen; the project has none.

Two consumers:

* ``dvc.yaml``: each stage's code deps are the closure of the module its ``cmd`` runs
  (``python -m <module>``), written with whole folders where every source file of a folder is in
  the closure. ``python -m lure.code_deps check`` reports disagreements (a test runs it);
  ``python -m lure.code_deps write`` rewrites the code deps in place, leaving data deps alone.
* the training resume fingerprint (:func:`lure.training.resume.code_digest`): a sha256 over the
  bytes of the training entry's closure.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from lure.paths import REPO_ROOT

#: Top-level packages whose sources count as project code.
PROJECT_PACKAGES = ("lure", "data_prep", "pipelines")
_CMD_MODULE = re.compile(r"\bpython3?\s+-m\s+([A-Za-z_][\w.]*)")


def module_file(module: str, root: Path = REPO_ROOT) -> Path | None:
    """The source file of project module ``module`` (``a/b/c.py`` or ``a/b/c/__init__.py``), or ``None``."""
    if module.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imported_modules(path: Path, module: str) -> set[str]:
    """Names of every module imported anywhere in ``path`` (source of ``module``), relative
    imports resolved; for ``from X import Y`` both ``X`` and ``X.Y`` (Y may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(module, path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def import_closure(entries: str | Iterable[str], root: Path = REPO_ROOT) -> list[Path]:
    """Sorted source files (relative to ``root``) of the import closure of ``entries`` (module names)."""
    todo = [entries] if isinstance(entries, str) else list(entries)
    seen_modules: set[str] = set()
    files: set[Path] = set()
    while todo:
        module = todo.pop()
        for name in _with_parents(module):
            if name in seen_modules:
                continue
            seen_modules.add(name)
            path = module_file(name, root)
            if path is None:
                continue
            files.add(path.relative_to(root))
            todo.extend(imported_modules(path, name))
    missing = [e for e in ([entries] if isinstance(entries, str) else entries) if module_file(e, root) is None]
    if missing:
        raise ValueError(f"entry module {missing[0]!r} is not a project module under {root}")
    return sorted(files)


def closure_digest(entries: str | Iterable[str], root: Path = REPO_ROOT) -> str:
    """sha256 over the relative paths and bytes of the closure's files."""
    digest = hashlib.sha256()
    for rel in import_closure(entries, root):
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update((root / rel).read_bytes())
    return digest.hexdigest()


def _sources_under(folder: Path, root: Path) -> set[Path]:
    return {p.relative_to(root) for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


def compress(files: Iterable[Path], root: Path = REPO_ROOT) -> list[str]:
    """DVC dep paths for ``files``: a folder where every source file under it is in ``files``
    (largest such folders first), single files otherwise."""
    remaining = set(files)
    out: list[str] = []
    folders = sorted({parent for f in remaining for parent in f.parents if parent != Path(".")},
                     key=lambda p: (len(p.parts), p.as_posix()))
    for folder in folders:
        sources = _sources_under(root / folder, root)
        if sources and sources <= remaining:
            out.append(folder.as_posix())
            remaining -= sources
    out.extend(f.as_posix() for f in remaining)
    return sorted(out)


# ----------------------------------------------------------------------------- dvc.yaml
def stage_entries(dvc_yaml: Path) -> dict[str, str]:
    """``{stage: entry module}`` for every stage whose ``cmd`` runs ``python -m <module>``."""
    import yaml

    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    entries: dict[str, str] = {}
    for name, stage in stages.items():
        match = _CMD_MODULE.search(str(stage.get("cmd", "")))
        if match:
            entries[name] = match.group(1)
    return entries


def is_code_dep(dep: str, root: Path = REPO_ROOT) -> bool:
    """True for a dep that names project source: a ``.py`` file or a folder of a project package."""
    path = Path(dep)
    if not path.parts or path.parts[0] not in PROJECT_PACKAGES:
        return False
    return dep.endswith(".py") or (root / path).is_dir()


def stage_code_deps(dvc_yaml: Path, root: Path = REPO_ROOT) -> dict[str, tuple[list[str], list[str]]]:
    """``{stage: (declared code deps, computed code deps)}``."""
    import yaml

    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    out = {}
    for name, entry in stage_entries(dvc_yaml).items():
        deps = [next(iter(d)) if isinstance(d, dict) else str(d) for d in stages[name].get("deps", [])]
        declared = sorted(d.rstrip("/") for d in deps if is_code_dep(d, root))
        out[name] = (declared, compress(import_closure(entry, root), root))
    return out


def check(dvc_yaml: Path = REPO_ROOT / "dvc.yaml", root: Path = REPO_ROOT) -> list[str]:
    """One line per disagreement between ``dvc.yaml``'s code deps and the import closures."""
    problems = []
    for stage, (declared, computed) in stage_code_deps(dvc_yaml, root).items():
        for dep in sorted(set(computed) - set(declared)):
            problems.append(f"{stage}: missing code dep {dep}")
        for dep in sorted(set(declared) - set(computed)):
            problems.append(f"{stage}: {dep} is not (entirely) imported by the stage")
    return problems


def write(dvc_yaml: Path = REPO_ROOT / "dvc.yaml", root: Path = REPO_ROOT) -> bool:
    """Rewrite the code deps of every stage in ``dvc_yaml`` from the closures (data deps and the
    rest of the file untouched). Returns whether the file changed."""
    from lure.fileio import atomic_write_text

    computed = {stage: deps for stage, (_, deps) in stage_code_deps(dvc_yaml, root).items()}
    lines = dvc_yaml.read_text(encoding="utf-8").splitlines(keepends=True)
    out: list[str] = []
    stage: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        header = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if header:
            stage = header.group(1)
        if stage in computed and re.match(r"^    deps:\s*$", line):
            out.append(line)
            i += 1
            kept = []
            while i < len(lines) and re.match(r"^      - ", lines[i]):
                dep = lines[i].split("- ", 1)[1].split("#")[0].strip()
                if not is_code_dep(dep, root):
                    kept.append(lines[i])
                i += 1
            out.extend(kept)
            out.extend(f"      - {dep}\n" for dep in computed[stage])
            continue
        out.append(line)
        i += 1
    text = "".join(out)
    if text == dvc_yaml.read_text(encoding="utf-8"):
        return False
    atomic_write_text(dvc_yaml, text)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lure.code_deps", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print the import closure of a module")
    show.add_argument("module")
    sub.add_parser("check", help="compare dvc.yaml's code deps with the closures (exit 1 on a difference)")
    sub.add_parser("write", help="rewrite dvc.yaml's code deps from the closures")
    args = parser.parse_args(argv)
    if args.command == "show":
        for path in import_closure(args.module):
            print(path.as_posix())
        return 0
    if args.command == "check":
        problems = check()
        for line in problems:
            print(line)
        return 1 if problems else 0
    print("dvc.yaml updated" if write() else "dvc.yaml already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
