"""Image I/O and conversions, the one place for them.

Conventions used everywhere in the project:

* numpy images are ``HxW`` (grey) or ``HxWx3`` (RGB), uint8 0-255 unless a function says it also
  takes uint16 0-65535; ``HxWx4`` loses its alpha, ``HxWx1`` is grey.
* tensors are float32 in [0, 1], ``(1, C, H, W)`` (batch of one) unless said otherwise; C = 3 for
  RGB, 1 for grey or luminance.
* luminance/chroma is full-range BT.601 YCbCr (:mod:`lure.color`).
* an infrared/visible folder pair is matched by file stem (name without extension).

Readers raise :class:`ImageError` (a ``ValueError``) with one line naming the file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lure.color import luminance, rgb_to_ycbcr, ycbcr_to_rgb
from lure.fileio import atomic_write_bytes

__all__ = [
    "IMAGE_SUFFIXES", "IR_RANGES", "WRITE_FORMATS", "ImageError", "chw_tensor", "decode_image",
    "encode_png", "float_to_uint8", "infrared_tensor", "is_image_file", "list_images", "luminance_uint8",
    "mean_grey", "pair_by_stem", "read_image", "read_uint8", "reduce_to_8bit", "to_grey", "to_layout",
    "to_rgb", "to_tensor", "to_uint8", "visible_tensor", "with_chroma", "write_image",
]

#: File suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Output suffix -> PIL format of :func:`write_image`.
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF",
                 ".tiff": "TIFF", ".webp": "WEBP"}
#: Names skipped when listing a folder (besides hidden files and ``._*`` resource forks).
STRAY_NAMES = {"thumbs.db", ".ds_store", "desktop.ini"}
#: How :func:`infrared_tensor` maps integers to [0, 1].
IR_RANGES = ("full", "stretch")


class ImageError(ValueError):
    """An image that cannot be read or written; the message is one line naming the file."""


# ----------------------------------------------------------------------------- folders
def is_image_file(path: Path) -> bool:
    """True for a regular file with an image suffix; hidden files and OS clutter are not images."""
    name = path.name
    if name.lower() in STRAY_NAMES or name.startswith("."):
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def list_images(folder: str | os.PathLike, skipped: list[str] | None = None) -> dict[str, Path]:
    """Images directly in ``folder`` by file stem, sorted by stem; ``{}`` when the folder is missing.

    A stem present twice (``a.jpg`` and ``a.png``) keeps the first in sorted order and reports the
    other in ``skipped``.
    """
    folder = Path(folder)
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        if path.stem in found:
            if skipped is not None:
                skipped.append(f"{path}: duplicate of {found[path.stem].name}, ignored")
            continue
        found[path.stem] = path
    return dict(sorted(found.items()))


def pair_by_stem(
    first: dict[str, Path], second: dict[str, Path]
) -> tuple[list[tuple[str, Path, Path]], list[Path], list[Path]]:
    """``(pairs, first_only, second_only)``: ``(stem, first_path, second_path)`` for every stem in
    both (sorted by stem), and the files of each side without a partner."""
    pairs = [(stem, first[stem], second[stem]) for stem in sorted(set(first) & set(second))]
    first_only = [first[s] for s in sorted(set(first) - set(second))]
    second_only = [second[s] for s in sorted(set(second) - set(first))]
    return pairs, first_only, second_only


# ----------------------------------------------------------------------------- reading
def read_image(path: str | os.PathLike, role: str = "image") -> np.ndarray:
    """An 8- or 16-bit image file as stored: uint8/uint16 ``HxW`` or ``HxWxC``; ``role`` names it
    in errors (e.g. ``"infrared"``). Palette and two-channel images become RGB or grey."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{role} image {path} does not exist")
    if not path.is_file():
        raise ImageError(f"{role} image {path} is not a file")
    if path.suffix.lower() in (".tif", ".tiff"):
        try:
            import tifffile

            array = np.asarray(tifffile.imread(path))
        except Exception as error:  # noqa: BLE001 - any reader failure means "not a readable TIFF"
            raise ImageError(f"{role} image {path} is not a readable TIFF ({type(error).__name__})") from None
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
            array = array.transpose(1, 2, 0)  # planar (C, H, W) TIFF
        return _integer_image(array, path, role)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                return _integer_image(np.asarray(img), path, role)
            if img.mode not in ("L", "RGB"):
                img = img.convert("L" if img.mode in ("LA", "1") else "RGB")
            return np.asarray(img).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageError(f"{role} image {path} is not a readable image ({type(error).__name__})") from None


def _integer_image(array: np.ndarray, path: Path, role: str) -> np.ndarray:
    if array.dtype in (np.uint8, np.uint16):
        return array
    if np.issubdtype(array.dtype, np.integer) and array.size and array.min() >= 0 and array.max() <= 65535:
        return array.astype(np.uint16)
    raise ImageError(f"{role} image {path} has unsupported pixel type {array.dtype} (expected 8 or 16 bit)")


def read_uint8(path: str | os.PathLike, grey: bool) -> np.ndarray:
    """An image file as uint8 ``HxW`` (``grey``, PIL's BT.601 luma) or ``HxWx3`` RGB (grey repeated).

    16-bit files are scaled to 8 bits by 255/65535 when they use values above 255, else kept.
    This is the data-building reader: its output decides the bytes of every shard.
    """
    try:
        with Image.open(path) as img:
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr16 = np.asarray(img, dtype=np.float64)
                top = 65535.0 if arr16.max() > 255 else 255.0
                img = Image.fromarray(np.clip(arr16 / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
            img = img.convert("L" if grey else "RGB")
            return np.asarray(img)
    except (OSError, ValueError) as err:
        raise ImageError(f"cannot read image {path}: {err}") from err


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 ``HxW`` (single channel) or ``HxWx3`` (colour)."""
    with Image.open(io.BytesIO(data)) as img:
        if img.mode not in ("L", "RGB"):
            img = img.convert("RGB" if img.mode in ("RGBA", "P", "CMYK") else "L")
        return np.asarray(img)


# ----------------------------------------------------------------------------- writing
def encode_png(image: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG bytes of a uint8 ``HxW`` or ``HxWx3`` array (deterministic for a given level)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 image atomically (temporary file, then rename), format from the suffix."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"output {path}: unsupported extension {path.suffix!r}; use one of "
                         f"{', '.join(sorted(WRITE_FORMATS))}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format=fmt)
    return atomic_write_bytes(path, buffer.getvalue())


# ----------------------------------------------------------------------------- numpy layouts
def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 ``HxW`` or ``HxWx3`` -> ``HxWx3`` (grey repeated)."""
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 ``HxWx3`` -> ``HxW`` (BT.601 luma, as PIL's ``convert("L")``); ``HxW`` unchanged."""
    return image if image.ndim == 2 else np.asarray(Image.fromarray(image).convert("L"))


def to_layout(image: np.ndarray, grey: bool) -> np.ndarray:
    """A uint8 array in the layout of its modality: ``HxW`` when ``grey`` (luma of colour input),
    else ``HxWx3`` RGB (grey repeated); alpha and singleton channels dropped."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return np.ascontiguousarray(to_grey(np.ascontiguousarray(arr)) if grey else to_rgb(arr))


def mean_grey(image: np.ndarray) -> np.ndarray:
    """``HxW`` of an ``HxW``/``HxWxC`` image by averaging its (first three) channels, rounded, same
    dtype — how the fusion tools read a 3-channel grey infrared file."""
    if image.ndim == 2:
        return image
    return image[:, :, :3].mean(axis=2).round().astype(image.dtype)


def reduce_to_8bit(image: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by rounding ``x / 257`` (0-65535 onto 0-255); uint8 unchanged."""
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float64) / 257.0).astype(np.uint8)
    return image


def float_to_uint8(array: np.ndarray) -> np.ndarray:
    """float array in [0, 1] -> uint8, rounded and clipped."""
    return np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- tensors
def _unit_float(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    raise ValueError(f"{name}: expected a uint8 or uint16 image, got dtype {image.dtype}")


def to_tensor(image: np.ndarray, channels: int = 3) -> torch.Tensor:
    """uint8/uint16 ``HxW``/``HxWx1``/``HxWx3`` -> float ``(1, channels, H, W)`` in [0, 1]
    (:func:`visible_tensor`; a channel-count change averages the channels)."""
    tensor = visible_tensor(image)
    if tensor.shape[1] != channels and channels in (1, 3):
        tensor = tensor.mean(1, keepdim=True).expand(-1, channels, -1, -1)
    return tensor.contiguous()


def chw_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``HxW``/``HxWx3`` -> float32 ``(3, H, W)`` in [0, 1] (no batch axis; grey repeated)."""
    rgb = np.ascontiguousarray(to_rgb(image).transpose(2, 0, 1))
    return torch.from_numpy(rgb).float().div_(255.0)


def visible_tensor(image: np.ndarray) -> torch.Tensor:
    """Visible uint8/uint16 ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4`` -> float ``(1, C, H, W)`` in
    [0, 1] with C = 3 (RGB) or 1 (grey)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"visible image: expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        image = image[:, :, :3] if image.shape[2] > 1 else image[:, :, 0]
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"visible image: expected HxW or HxWx3, got shape {image.shape}")
    array = _unit_float(image, "visible image")
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array)).unsqueeze(0)


def infrared_tensor(image: np.ndarray, ir_range: str = "full") -> torch.Tensor:
    """Infrared uint8/uint16 ``HxW`` (``HxWx1``/``HxWx3``/``HxWx4`` grey: channels averaged) ->
    float ``(1, 1, H, W)`` in [0, 1]. ``ir_range="stretch"`` maps the image's own min..max to 0..1
    (for raw 16-bit radiometric counts); ``"full"`` divides by the dtype's maximum."""
    if ir_range not in IR_RANGES:
        raise ValueError(f"ir_range must be one of {IR_RANGES}, got {ir_range!r}")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"infrared image: expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        image = image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3]
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"infrared image: expected HxW (or 3-channel grey), got shape {image.shape}")
    array = _unit_float(image, "infrared image")
    if array.ndim == 3:  # in float64: three equal channels give back exactly the one-channel image
        array = array.mean(axis=2, dtype=np.float64).astype(np.float32)
    if ir_range == "stretch":
        low, high = float(array.min()), float(array.max())
        array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    return torch.from_numpy(np.ascontiguousarray(array))[None, None]


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """float ``(1, C, H, W)`` in [0, 1] -> uint8 ``HxWxC`` (``HxW`` when C = 1), clamped and rounded."""
    array = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()[0]
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def luminance_uint8(image: torch.Tensor) -> np.ndarray:
    """The Y channel of a float RGB ``(1, 3, H, W)`` image (values clamped to [0, 1]) as uint8 ``HxW``."""
    return to_uint8(luminance(image.clamp(0, 1)))


def with_chroma(y: torch.Tensor, chroma_from: torch.Tensor) -> torch.Tensor:
    """Luminance ``y`` ``(1, 1, H, W)`` put together with the Cb/Cr of the RGB image ``chroma_from``
    ``(1, 3, H, W)`` -> RGB ``(1, 3, H, W)`` clamped to [0, 1]; a grey ``chroma_from`` gives ``y``."""
    if chroma_from.shape[1] == 1:
        return y.clamp(0, 1)
    return ycbcr_to_rgb(torch.cat([y, rgb_to_ycbcr(chroma_from)[:, 1:]], dim=1)).clamp(0, 1)
