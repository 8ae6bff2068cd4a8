"""Where a training process runs: its device, its process group (``torchrun``: nccl on GPUs, gloo on
CPUs), the GPU back-end switches, and the one line a run prints about all of it.

One rule picks the device (:func:`resolve_device`): ``--device`` chooses the *kind* of device
(``cpu``, ``cuda``; default: a GPU when one is visible), and under ``torchrun`` the GPU *index* is
always the process's ``LOCAL_RANK``, so that ``--device cuda`` on 8 processes uses 8 GPUs. Naming
one GPU (``cuda:3``) is only allowed for a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

#: What a CPU-only torch build on a GPU machine should install instead (the project pins 2.13.0).
CUDA_INSTALL_HINT = ("pip install --force-reinstall torch==2.13.0 --index-url "
                     "https://download.pytorch.org/whl/cu128 (pick the CUDA version of your driver)")


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    device: torch.device
    local_rank: int = 0
    backend: str | None = None  # process-group back-end; None for a single process
    timeout_s: float | None = None  # process-group timeout; None for a single process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(requested: str | None, world_size: int, local_rank: int, cuda_available: bool,
                   device_count: int) -> torch.device:
    """The device of one training process (the rule in the module docstring).

    ``requested``: ``None``/``"auto"`` (a GPU when visible, else the CPU), ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` (single process only) or another torch device string. ValueError (one line naming
    ``--device``) when the request cannot be met."""
    kind = (requested or "auto").strip().lower()
    if kind == "auto":
        kind = "cuda" if cuda_available else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if kind.startswith("cuda"):
        if not cuda_available:
            raise ValueError(f"--device {requested}: torch {torch.__version__} sees no CUDA device "
                             f"({describe_torch_build()}); use --device cpu or install a CUDA build: {CUDA_INSTALL_HINT}")
        if kind == "cuda":
            index = local_rank
        elif world_size > 1:
            raise ValueError(f"--device {requested} would put all {world_size} torchrun processes on one GPU; "
                             "use --device cuda (each process takes cuda:LOCAL_RANK)")
        else:
            index = torch.device(kind).index or 0
        if index >= device_count:
            raise ValueError(f"--device {requested}: GPU {index} is wanted (LOCAL_RANK {local_rank}) but only "
                             f"{device_count} GPU(s) are visible; start fewer processes per node")
        return torch.device("cuda", index)
    return torch.device(kind)


def describe_torch_build() -> str:
    """``"torch 2.13.0+cu128, CUDA 12.8, cuDNN 91000"`` or ``"torch 2.13.0+cpu, a CPU-only build"``."""
    cuda = torch.version.cuda
    if cuda is None:
        return f"torch {torch.__version__}, a CPU-only build"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return f"torch {torch.__version__}, CUDA {cuda}" + (f", cuDNN {cudnn}" if cudnn else "")


def setup_distributed(device: str | None = None, timeout_s: float = 1800.0) -> DistContext:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``, timeout
    ``timeout_s`` seconds for every collective) and pick the device (:func:`resolve_device`)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    dev = resolve_device(device, world, local_rank, cuda, torch.cuda.device_count() if cuda else 0)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = None
    if world > 1:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistContext(rank=rank, world_size=world, device=dev, local_rank=local_rank, backend=backend,
                       timeout_s=timeout_s if world > 1 else None)


def configure_backends(device: torch.device, cudnn_benchmark: bool, tf32: bool, deterministic: bool) -> None:
    """GPU back-end switches of a run: cuDNN autotuning, TF32 matmuls and convolutions, and the
    deterministic mode (``torch.use_deterministic_algorithms``, cuDNN deterministic, no autotuning,
    ``CUBLAS_WORKSPACE_CONFIG``). Only the deterministic mode acts on a CPU."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def any_rank_flags(ctx: DistContext, flags: torch.Tensor) -> list[bool]:
    """Each entry of ``flags`` (a float tensor on the process's device) set on *any* rank: one
    all-reduce and one device-to-host copy, the training step's only synchronisation."""
    if ctx.enabled:
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return [v > 0 for v in flags.tolist()]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def teardown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
