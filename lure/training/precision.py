"""Numerically sensitive training code runs in float32, also under bf16 autocast.

bf16 keeps 8 bits of mantissa: on a bright smooth region (values near 0.9) a local mean of
``x * x`` is off by about 0.004, far more than the local variance SSIM then takes as the
difference of two such means, and more than its stabiliser ``(0.03)^2``. Under autocast the
convolutions of the loss terms (Gaussian windows, Sobel filters, colour transforms through
matmuls) would run in bf16; :func:`float32_loss` turns autocast off inside a loss function and
casts its floating-point tensor arguments (also inside lists and tuples, e.g. multi-scale latents)
to float32. Gradients flow back through the casts unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def _as_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, list | tuple):
        return type(value)(_as_float32(v) for v in value)
    return value


def _device_types(values: Any) -> set[str]:
    if isinstance(values, torch.Tensor):
        return {values.device.type}
    if isinstance(values, list | tuple):
        return set().union(*(_device_types(v) for v in values)) if values else set()
    return set()


def autocast_disabled(*tensors: Any) -> ExitStack:
    """A context in which autocast is off on the device types of ``tensors`` (and the CPU)."""
    stack = ExitStack()
    for device_type in sorted(_device_types(list(tensors)) | {"cpu"}):
        stack.enter_context(torch.autocast(device_type, enabled=False))
    return stack


def float32_loss(fn: F) -> F:
    """Decorator: run ``fn`` with autocast off and its floating tensor arguments in float32."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args, kwargs = _as_float32(args), {k: _as_float32(v) for k, v in kwargs.items()}
        with autocast_disabled(args, list(kwargs.values())):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
