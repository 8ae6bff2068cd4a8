"""Model weights shipped with the project (``weights/``) and which checkpoint a command uses.

``weights/manifest.json`` lists every shipped file: its sha256, profile, model configuration and
parameter count, the git commit of the code that trained it, the training data (shard manifests
and their sha256) and its held-out metrics. :func:`resolve_checkpoint` picks the
checkpoint of ``lure fuse`` and ``lure restore``: the default shipped weights unless
``--checkpoint`` names another (``pipeline``: the pipeline's own final model
``checkpoints/stage2/model.pt``, what ``dvc repro`` / ``make demo`` trained here; a shipped name
such as ``lure-demo``; or a path). A pipeline run therefore never replaces the shipped model
silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lure.fileio import sha256_file
from lure.paths import REPO_ROOT

WEIGHTS_DIR = REPO_ROOT / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
#: The final fusion model written by the training pipeline (``dvc repro`` / ``make demo``).
PIPELINE_CHECKPOINT = REPO_ROOT / "checkpoints" / "stage2" / "model.pt"
#: ``--checkpoint pipeline`` selects :data:`PIPELINE_CHECKPOINT`.
PIPELINE_CHOICE = "pipeline"


@dataclass(frozen=True)
class ChosenCheckpoint:
    """A checkpoint path and a one-line account of where it came from (printed by the CLI)."""

    path: Path
    origin: str


def read_manifest(path: str | Path | None = None) -> dict[str, Any]:
    """The shipped-weights manifest (``{"default": name, "weights": {name: entry}}``); an empty
    one when the file is absent."""
    path = Path(path) if path is not None else MANIFEST
    if not path.is_file():
        return {"default": None, "weights": {}}
    return json.loads(path.read_text())


def shipped_weights(manifest_path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """``{name: entry}`` of every shipped weights file; each entry has at least ``file`` (relative
    to the manifest's folder), ``sha256`` and ``profile``; ``path`` is added (absolute)."""
    manifest_path = Path(manifest_path) if manifest_path is not None else MANIFEST
    entries = read_manifest(manifest_path).get("weights", {})
    return {name: {**entry, "path": str(manifest_path.parent / entry["file"])} for name, entry in entries.items()}


def default_shipped(manifest_path: str | Path | None = None) -> dict[str, Any] | None:
    """The manifest's default entry (with ``name`` and ``path``), or ``None`` when nothing ships."""
    manifest = read_manifest(manifest_path)
    name = manifest.get("default")
    weights = shipped_weights(manifest_path)
    if name is None or name not in weights:
        return None
    return {"name": name, **weights[name]}


def verify(entry: dict[str, Any]) -> bool:
    """Whether the shipped file exists and has the manifest's sha256."""
    path = Path(entry["path"])
    return path.is_file() and sha256_file(path) == entry["sha256"]


def resolve_checkpoint(explicit: str | Path | None = None, pipeline: str | Path | None = None,
                       manifest_path: str | Path | None = None) -> ChosenCheckpoint:
    """The checkpoint a command loads (``explicit`` is ``--checkpoint``):

    * ``None``: the default shipped weights (sha256-checked); only when nothing ships, the
      pipeline's final model when it exists;
    * ``"pipeline"``: the pipeline's final model (``pipeline``, default :data:`PIPELINE_CHECKPOINT`);
    * the name of a shipped file in the manifest (e.g. ``lure-demo``): that file (sha256-checked);
    * anything else: a checkpoint path.

    Raises ``FileNotFoundError`` with one line saying what to do when the choice does not exist."""
    pipeline = Path(pipeline) if pipeline is not None else PIPELINE_CHECKPOINT
    manifest_path = Path(manifest_path) if manifest_path is not None else MANIFEST
    if explicit is not None and str(explicit) == PIPELINE_CHOICE:
        if not pipeline.is_file():
            raise FileNotFoundError(f"--checkpoint pipeline: {pipeline} does not exist; train it with `make demo` "
                                    "(or `dvc repro`), or leave --checkpoint out to use the shipped weights")
        return ChosenCheckpoint(pipeline, f"the pipeline's model {_short(pipeline)} (--checkpoint pipeline)")
    shipped = shipped_weights(manifest_path)
    if explicit is not None and str(explicit) in shipped:
        return _shipped_choice({"name": str(explicit), **shipped[str(explicit)]}, manifest_path, default=False)
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found (check --checkpoint: a path, `pipeline`, or "
                                    f"one of the shipped weights {', '.join(shipped) or '(none)'})")
        return ChosenCheckpoint(path, f"checkpoint {path}")
    entry = default_shipped(manifest_path)
    if entry is not None:
        return _shipped_choice(entry, manifest_path, default=True)
    if pipeline.is_file():
        return ChosenCheckpoint(pipeline, f"the pipeline's model {_short(pipeline)} (no weights ship in "
                                          f"{_short(manifest_path.parent)})")
    raise FileNotFoundError(f"no trained model: no weights ship in {manifest_path.parent} and {pipeline} does not "
                            "exist; run `make demo` (or `dvc repro`), or pass --checkpoint PATH")


def _shipped_choice(entry: dict[str, Any], manifest_path: Path, default: bool) -> ChosenCheckpoint:
    """A shipped weights file, refused when it is missing or modified."""
    if not verify(entry):
        raise FileNotFoundError(f"shipped weights {entry['path']} are missing or do not match the sha256 in "
                                f"{manifest_path}; restore them with `git checkout -- weights/` or pass --checkpoint")
    which = "default " if default else ""
    hint = "; --checkpoint pipeline uses the model `make demo` trains" if default else ""
    return ChosenCheckpoint(Path(entry["path"]), f"the {which}shipped weights {entry['name']} "
                                                 f"({_short(Path(entry['path']))}, profile {entry['profile']}){hint}")


def _short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- shipping
def export_weights(checkpoint: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the model part of a pipeline checkpoint (weights, configuration, profile; no training
    state) to ``out`` atomically; returns ``{"sha256", "bytes", "parameters", "profile", "model_config"}``."""
    from lure.checkpoint import read_checkpoint, save_checkpoint
    from lure.models.config import LUREConfig
    from lure.models.lure_model import LURE

    payload = read_checkpoint(checkpoint)
    model = LURE(LUREConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["model"])
    save_checkpoint(out, model, payload["profile"], step=payload.get("step"), stage=payload.get("stage"))
    out = Path(out)
    return {"sha256": sha256_file(out), "bytes": out.stat().st_size, "parameters": model.part_parameters(),
            "profile": payload["profile"], "model_config": model.config.to_dict()}


def folder_digest(folder: str | Path) -> dict[str, Any]:
    """Content hash of a data folder, independent of where it lies: sha256 over the sorted
    ``(relative path, file sha256)`` of every file, and the file count."""
    import hashlib

    folder = Path(folder)
    digest, count = hashlib.sha256(), 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_file(path)}\n".encode())
        count += 1
    return {"files": count, "sha256": digest.hexdigest()}


@dataclass(frozen=True)
class WeightsComparison:
    """How two checkpoints' models differ: ``tensors`` compared, the names only one side has,
    and ``{name: max |a - b|}`` of the tensors present in both that are not bit-identical."""

    tensors: int
    only_in_first: tuple[str, ...]
    only_in_second: tuple[str, ...]
    differing: dict[str, float]
    config_differences: tuple[str, ...]

    @property
    def identical(self) -> bool:
        """Same configuration, same tensor names, every tensor bit-identical."""
        return not (self.only_in_first or self.only_in_second or self.differing or self.config_differences)


def compare_weights(first: str | Path, second: str | Path) -> WeightsComparison:
    """Compare the models of two checkpoints (pipeline checkpoints or shipped weights files alike;
    the training state is ignored): is a retrain the same model, bit for bit?"""
    import torch

    from lure.checkpoint import config_mismatch, read_checkpoint
    from lure.models.config import LUREConfig

    a, b = read_checkpoint(first), read_checkpoint(second)
    # "expected" is the first checkpoint's configuration, "checkpoint has" the second's
    config_diff = tuple(config_mismatch(LUREConfig.from_dict(a["model_config"]), b["model_config"]))
    if a.get("profile") != b.get("profile"):
        config_diff += (f"profile: {a.get('profile')!r} != {b.get('profile')!r}",)
    state_a, state_b = a["model"], b["model"]
    differing = {}
    for name in sorted(set(state_a) & set(state_b)):
        x, y = state_a[name], state_b[name]
        if x.shape != y.shape or x.dtype != y.dtype:
            differing[name] = float("inf")
        elif not torch.equal(x, y):
            differing[name] = float((x.double() - y.double()).abs().max())
    return WeightsComparison(tensors=len(set(state_a) & set(state_b)),
                             only_in_first=tuple(sorted(set(state_a) - set(state_b))),
                             only_in_second=tuple(sorted(set(state_b) - set(state_a))),
                             differing=differing, config_differences=config_diff)


def write_manifest_entry(name: str, entry: dict[str, Any], default: bool = False,
                         manifest_path: str | Path | None = None) -> dict[str, Any]:
    """Add or replace ``name`` in the manifest (atomic write); ``default`` makes it the default."""
    from lure.fileio import atomic_write_text

    manifest_path = Path(manifest_path) if manifest_path is not None else MANIFEST
    manifest = read_manifest(manifest_path)
    manifest.setdefault("weights", {})[name] = entry
    if default or manifest.get("default") is None:
        manifest["default"] = name
    manifest["weights"] = dict(sorted(manifest["weights"].items()))
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
