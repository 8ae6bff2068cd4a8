"""No-reference IQA (CLIP-IQA, LIQE, MANIQA, MUSIQ, ARNIQA) through ``pyiqa``, offline only.

``pyiqa`` is optional (``pip install pyiqa``; not a dependency of LURE) and imported lazily.
A metric is computed only when ``pyiqa`` is installed and the weights it needs are already on
disk. This module never downloads:

1. before constructing a metric it checks pyiqa's weight cache (``<torch hub dir>/pyiqa``,
   i.e. ``$TORCH_HOME/hub/pyiqa``, by default ``~/.cache/torch/hub/pyiqa``);
2. the metric is constructed with the Hugging Face hub forced offline and with every download
   path blocked (``torch.hub.download_url_to_file``, pyiqa's own downloader, and any socket
   connection), so a weight file missing from the cache turns into a skip note naming the
   file pyiqa wanted, instead of a download.

A skipped metric gets the value ``None`` and a one-line note (``notes`` argument / log).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from lure.metrics.matlab import check_rgb_uint8

__all__ = ["DEFAULT_NR_METRICS", "NoReferenceScorer", "no_reference_metrics", "pyiqa_cache_dir"]

LOG = logging.getLogger(__name__)

DEFAULT_NR_METRICS: tuple[str, ...] = ("clipiqa", "liqe", "maniqa", "musiq", "arniqa")


class WeightsNotCachedError(RuntimeError):
    """Raised inside the offline guard when pyiqa tries to fetch something."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def pyiqa_cache_dir() -> Path:
    """The folder where pyiqa keeps downloaded weights: ``torch.hub.get_dir()/pyiqa``."""
    try:
        import torch.hub

        hub_dir = Path(torch.hub.get_dir())
    except ImportError:  # pragma: no cover - torch is a LURE dependency
        torch_home = os.environ.get("TORCH_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
        )
        hub_dir = Path(torch_home) / "hub"
    return hub_dir / "pyiqa"


@contextlib.contextmanager
def _offline_guard() -> Iterator[None]:
    """Block every way pyiqa could download while a metric is being built or run."""

    def refuse_download(url: str, dst: str | os.PathLike[str] = "", *args: object, **kwargs: object) -> None:
        raise WeightsNotCachedError(f"{dst or '?'} (would download {url})")

    def refuse_socket(self: socket.socket, address: object, *args: object, **kwargs: object) -> None:
        raise WeightsNotCachedError(f"a network connection to {address!r}")

    def refuse_create_connection(address: object, *args: object, **kwargs: object) -> None:
        raise WeightsNotCachedError(f"a network connection to {address!r}")

    patches: list[tuple[object, str, object]] = []

    def patch(owner: object, name: str, value: object) -> None:
        if hasattr(owner, name):
            patches.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)

    env_keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old_env = {key: os.environ.get(key) for key in env_keys}
    try:
        for key in env_keys:
            os.environ[key] = "1"
        patch(socket.socket, "connect", refuse_socket)
        patch(socket.socket, "connect_ex", refuse_socket)
        patch(socket, "create_connection", refuse_create_connection)
        with contextlib.suppress(ImportError):
            import torch.hub

            patch(torch.hub, "download_url_to_file", refuse_download)
        with contextlib.suppress(ImportError):
            download_util = importlib.import_module("pyiqa.utils.download_util")
            patch(download_util, "download_url_to_file", refuse_download)
        with contextlib.suppress(ImportError):
            hf_constants = importlib.import_module("huggingface_hub.constants")
            patch(hf_constants, "HF_HUB_OFFLINE", True)
        yield
    finally:
        for owner, name, value in reversed(patches):
            setattr(owner, name, value)
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def no_reference_metrics(
    image_rgb_uint8: np.ndarray,
    names: Sequence[str] = DEFAULT_NR_METRICS,
    device: str | None = None,
    notes: dict[str, str] | None = None,
) -> dict[str, float | None]:
    """No-reference quality scores of one RGB image through pyiqa, or ``None`` per skipped metric.

    Builds the metrics for this one call; to score many images, build a
    :class:`NoReferenceScorer` once and call it per image.

    Args:
        image_rgb_uint8: ``H x W x 3`` RGB uint8 image (0-255); pyiqa receives it as a
            ``1 x 3 x H x W`` float tensor in [0, 1].
        names: pyiqa metric names (default: clipiqa, liqe, maniqa, musiq, arniqa).
        device: torch device string; default ``"cuda"`` when available, else ``"cpu"``.
        notes: optional dict filled with one line per skipped metric, e.g.
            ``"skipped: weights not cached at ~/.cache/torch/hub/pyiqa/..."``.

    Returns:
        ``{name: score or None}`` in the order of ``names``. Scores follow pyiqa's convention
        for each metric (all five listed are higher-is-better).

    Raises:
        ValueError: the image is not a non-empty H x W x 3 uint8 array.
    """
    return NoReferenceScorer(names, device)(image_rgb_uint8, notes)


class NoReferenceScorer:
    """pyiqa metrics built once, on first use, and reused for every image (a metric is a network:
    building one per image re-reads its weights). A metric that cannot be built is skipped for
    every image with the same note. Arguments as :func:`no_reference_metrics`."""

    def __init__(self, names: Sequence[str] = DEFAULT_NR_METRICS, device: str | None = None) -> None:
        self.names, self.device = tuple(names), device
        self._metrics: dict[str, object] = {}
        self._skip: dict[str, str] = {}

    def __call__(self, image_rgb_uint8: np.ndarray, notes: dict[str, str] | None = None) -> dict[str, float | None]:
        """``{name: score or None}`` of one ``H x W x 3`` RGB uint8 image (see :func:`no_reference_metrics`)."""
        check_rgb_uint8("image_rgb_uint8", image_rgb_uint8)
        results: dict[str, float | None] = {name: None for name in self.names}
        if not self._metrics and not self._skip:
            self._build()
        skip = dict(self._skip)
        if self._metrics:
            import torch

            tensor = torch.from_numpy(np.ascontiguousarray(image_rgb_uint8.transpose(2, 0, 1))).float().div(255.0)
            tensor = tensor.unsqueeze(0).to(self.device)
            for name, metric in self._metrics.items():
                try:
                    with _offline_guard(), torch.no_grad():
                        score = metric(tensor)
                    results[name] = float(torch.as_tensor(score).float().mean().item())
                except Exception as err:  # noqa: BLE001 - an optional third-party metric must not kill a run
                    skip[name] = f"skipped: pyiqa failed on {name!r}: {type(err).__name__}: {err}"
        return _finish(results, skip, notes)

    def _build(self) -> None:
        """Create every metric (or record why it is skipped)."""
        if importlib.util.find_spec("pyiqa") is None:
            self._skip = {name: "skipped: pyiqa is not installed (pip install pyiqa, then cache its weights)"
                          for name in self.names}
            return
        cache = pyiqa_cache_dir()
        if not cache.is_dir() or not any(cache.iterdir()):
            self._skip = {name: f"skipped: weights not cached at {cache} (folder missing or empty)"
                          for name in self.names}
            return
        import torch

        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        for name in self.names:
            try:
                with _offline_guard():
                    pyiqa = importlib.import_module("pyiqa")
                    self._metrics[name] = pyiqa.create_metric(name, device=self.device, as_loss=False)
            except WeightsNotCachedError as err:
                self._skip[name] = f"skipped: weights not cached at {cache} (pyiqa wanted {err.what})"
            except Exception as err:  # noqa: BLE001 - an optional third-party metric must not kill a run
                self._skip[name] = f"skipped: pyiqa failed on {name!r}: {type(err).__name__}: {err}"


def _finish(
    results: dict[str, float | None], skip: dict[str, str], notes: dict[str, str] | None
) -> dict[str, float | None]:
    for name, line in skip.items():
        LOG.info("%s: %s", name, line)
    if notes is not None:
        notes.update(skip)
    return results
