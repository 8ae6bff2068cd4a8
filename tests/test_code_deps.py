"""The code dependencies of the DVC stages and of the resume fingerprint come from the imports."""

from __future__ import annotations

from pathlib import Path

from lure.code_deps import check, compress, import_closure, write

REPO = Path(__file__).resolve().parents[1]


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_closure_follows_function_level_relative_and_from_imports(tmp_path):
    _package(tmp_path, {
        "lure/__init__.py": "",
        "lure/entry.py": "import os\nfrom . import helper\n\ndef run():\n    from lure.sub.deep import f\n    return f()\n",
        "lure/helper.py": "from .sub import other\n",
        "lure/sub/__init__.py": "",
        "lure/sub/deep.py": "def f():\n    return 1\n",
        "lure/sub/other.py": "import numpy\n",
        "lure/unused.py": "import lure.entry\n",
    })
    closure = {p.as_posix() for p in import_closure("lure.entry", tmp_path)}
    assert closure == {"lure/__init__.py", "lure/entry.py", "lure/helper.py", "lure/sub/__init__.py",
                       "lure/sub/deep.py", "lure/sub/other.py"}
    # a folder whose every source file is in the closure is named once
    assert compress([Path(p) for p in closure], tmp_path) == [
        "lure/__init__.py", "lure/entry.py", "lure/helper.py", "lure/sub"]


def test_dvc_yaml_code_deps_match_the_import_closures():
    problems = check(REPO / "dvc.yaml", REPO)
    assert problems == [], "run `python -m lure.code_deps write`:\n" + "\n".join(problems)


def test_write_rewrites_only_code_deps(tmp_path):
    _package(tmp_path, {
        "lure/__init__.py": "",
        "lure/a.py": "from lure import b\n",
        "lure/b.py": "",
        "lure/c.py": "",
        "pipelines/__init__.py": "",
        "pipelines/stage.py": "import lure.a\n",
    })
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text("stages:\n  one:\n    cmd: python -m pipelines.stage --flag\n    deps:\n"
                        "      - data/shards\n      - lure/c.py\n    outs:\n      - out.txt\n")
    assert check(dvc_yaml, tmp_path) == ["one: missing code dep lure/__init__.py",
                                         "one: missing code dep lure/a.py",
                                         "one: missing code dep lure/b.py",
                                         "one: missing code dep pipelines",
                                         "one: lure/c.py is not (entirely) imported by the stage"]
    assert write(dvc_yaml, tmp_path)
    assert check(dvc_yaml, tmp_path) == []
    text = dvc_yaml.read_text()
    assert "      - data/shards\n" in text and "lure/c.py" not in text and "    outs:\n      - out.txt\n" in text
    assert not write(dvc_yaml, tmp_path)  # idempotent


def test_layer_rules_keep_the_closures_small():
    params = {p.as_posix() for p in import_closure("lure.config", REPO)}
    assert not any(p.startswith("lure/models/") and p not in ("lure/models/__init__.py", "lure/models/config.py")
                   for p in params), "reading parameters must not import the network"
    text = {p.as_posix() for p in import_closure("lure.text.parser", REPO)}
    assert not any(p.startswith(("lure/models/", "lure/data/", "data_prep/")) for p in text)
    models = {p.as_posix() for p in import_closure("lure.models.lure_model", REPO)}
    assert all(p.startswith("lure/models/") or p == "lure/__init__.py" for p in models), "a model imports only models"
    evaluation = {p.as_posix() for p in import_closure("pipelines.stages.evaluate", REPO)}
    assert not any(p.startswith("data_prep/sources") for p in evaluation), "evaluation must not import the parsers"
    data = {p.as_posix() for p in import_closure("pipelines.stages.build_data", REPO)}
    assert not any(p.startswith(("lure/models/lure_model", "lure/text/parser", "lure/text/prompt_generation"))
                   for p in data), "building data must not import the network, the parser or the LLM"
    image_io = {p.as_posix() for p in import_closure("lure.image_io", REPO)}
    assert image_io == {"lure/__init__.py", "lure/image_io.py", "lure/color.py", "lure/fileio.py"}
