"""What makes a training run resumable and identifiable: where a stage writes, the signal handler,
the run fingerprint (parameters, training code, data, texts), the position of every data stream
and every RNG state (the loop that uses them: :mod:`lure.training.trainer`).

A resume state holds everything that decides the rest of the run: model, optimiser, scheduler,
step, the epoch and batch position of every data stream, every RNG of every rank (torch, CUDA,
NumPy, Python and the text-sampling generator) and the loss values awaiting the next log line;
the loaders' batches are a function of (seed, epoch, position) only and validation leaves the
RNGs as it found them, so a run stopped at any step and resumed ends with the weights and metrics
of the uninterrupted run (same device and thread count). No gradient scaler: autocast is bf16.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lure.training.config import TrainingConfig


@dataclass(frozen=True)
class StageOutputs:
    """Where a stage writes: ``checkpoints/<stage>/model.pt`` (final weights, a DVC output),
    ``checkpoints/<stage>/resume/last.pt`` (resume state, persistent), stage 1's
    ``checkpoints/stage1/resume/first_phase.pt`` (the weights the refinement starts from) and
    ``dvclive/<stage>``."""

    checkpoint_dir: Path
    live_dir: Path

    @classmethod
    def default(cls, stage: str, root: str | Path = ".") -> StageOutputs:
        root = Path(root)
        return cls(root / "checkpoints" / stage, root / "dvclive" / stage)

    @property
    def model_path(self) -> Path:
        return self.checkpoint_dir / "model.pt"

    @property
    def stage1_model_path(self) -> Path:
        """The stage-1 weights stage 2 starts from (``checkpoints/stage1/model.pt`` beside this stage)."""
        return self.checkpoint_dir.parent / "stage1" / "model.pt"

    @property
    def resume_path(self) -> Path:
        return self.checkpoint_dir / "resume" / "last.pt"

    @property
    def first_phase_path(self) -> Path:
        """Stage 1's weights at the end of its first phase: ``--refine-from`` reruns the refinement alone."""
        return self.checkpoint_dir / "resume" / "first_phase.pt"


class StopSignal:
    """Context manager turning SIGTERM/SIGINT into a flag the loop checks after each step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def __enter__(self) -> StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


#: The module whose import closure is the training code (the DVC stages' entry point).
TRAINING_ENTRY = "pipelines.stages.train"


def code_digest(root: str | Path | None = None) -> str:
    """sha256 over the training code: the source files of :data:`TRAINING_ENTRY`'s static import
    closure (:mod:`lure.code_deps`, the same closure ``dvc.yaml`` lists) under the project ``root``
    (default: this checkout)."""
    from lure.code_deps import closure_digest

    return closure_digest(TRAINING_ENTRY, Path(root)) if root else closure_digest(TRAINING_ENTRY)


def fingerprint(params: dict[str, Any], stage: str, inputs: dict[str, str] | None = None) -> str:
    """Hash of everything that defines a stage's run: its parameters (the stage sections with their
    defaults filled in) and ``inputs`` (digests of the code, data, task texts and, for stage 2, the
    stage-1 weights). A resume state with another hash is ignored, so a rerun after any of them
    changed trains afresh instead of resuming."""
    config = TrainingConfig.from_params(params)
    keys = ["seed", "model", "text_encoder"]
    chosen = {k: params.get(k) for k in keys} | {"stage1": config.stage1.to_dict()}
    if stage == "stage2":
        chosen["stage2"] = config.stage2.to_dict()
    blob = json.dumps({"params": chosen, "inputs": inputs or {}}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sets_digest(sets: list[str], data_root: Path) -> str:
    """sha256 of the named sets' shard manifests (which list every shard's sha256); literal URLs
    enter by name."""
    digest = hashlib.sha256()
    for item in sets:
        manifest = data_root / "shards" / item / "manifest.json"
        digest.update(item.encode())
        if manifest.is_file():
            digest.update(manifest.read_bytes())
    return digest.hexdigest()


class DataStream:
    """The endless batch stream of one loader: its epochs in order, each read from the loader's
    :meth:`~lure.data.loaders.ShardLoader.iterate`; ``position`` (epoch, batches consumed in it)
    restarts it exactly where it stood."""

    def __init__(self, loader: Any, epoch: int = 0, batch: int = 0) -> None:
        self.loader, self.epoch, self.batch = loader, epoch, batch
        self._batches: Iterator[dict] | None = None

    def __iter__(self) -> DataStream:
        return self

    def __next__(self) -> dict:
        while True:
            if self._batches is None:
                self._batches = iter(self.loader.iterate(self.epoch, self.batch))
            try:
                item = next(self._batches)
            except StopIteration:
                if self.batch == 0:
                    raise ValueError(f"training data stream: epoch {self.epoch} has no batches") from None
                self._batches, self.epoch, self.batch = None, self.epoch + 1, 0
                continue
            self.batch += 1
            return item

    @property
    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}


def capture_rng(text_generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state a training process draws from (``torch.load(weights_only=True)`` safe); of
    the CUDA generators, the current device's (each rank saves its own)."""
    np_kind, np_key, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            # this process's own GPU only (cuda:LOCAL_RANK): a resume on fewer visible GPUs must work
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "numpy": {"kind": np_kind, "key": torch.from_numpy(np_key.astype(np.int64)), "pos": int(np_pos),
                      "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
            "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
            "text": text_generator.get_state()}


def saved_cuda_rng(saved: Any, device_index: int) -> torch.Tensor | None:
    """The CUDA generator state to restore on the current device ``device_index`` from a resume
    state's ``cuda`` entry: this rank's state (a tensor), nothing (``None``, a CPU run) or, in
    states of older versions, a list with one state per GPU visible at save time, of which the
    current device's entry is used when it exists (a resume on fewer GPUs than the run had)."""
    if isinstance(saved, list | tuple):
        return saved[device_index] if device_index < len(saved) else None
    return saved


def restore_rng(state: dict[str, Any], text_generator: torch.Generator) -> None:
    """Set every RNG to a :func:`capture_rng` state."""
    torch.set_rng_state(state["torch"])
    cuda = saved_cuda_rng(state["cuda"], torch.cuda.current_device() if torch.cuda.is_available() else 0)
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)  # the current device: cuda:LOCAL_RANK under torchrun
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    text_generator.set_state(state["text"])
