"""Typed configurations of the two training stages: the ``stage1`` and ``stage2`` sections of the
resolved parameters (:func:`lure.config.load_params`).

Every default lives in exactly one place: the dataclass fields below (a field without a default is
a required key). :meth:`StageConfig.from_dict` rejects an unknown key, a missing required key, a
wrong type or an out-of-range value with one line naming the key and its section (for example
``profiles.demo.stage1``). Conventions: integers are accepted for floats, integral floats for
integers, and a numeric string for a float (PyYAML reads ``1e-3`` as a string); a single string is
accepted for a list of set names; ``grad_clip`` 0 disables clipping.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from types import NoneType, UnionType
from typing import Any, ClassVar, TypeVar

from lure.training.losses import UNIFIED_MEASURES
from lure.training.source_similarity import PERCEPTUAL_TERMS

C = TypeVar("C", bound="StageConfig")


#: Stage-1 tasks whose degradation survives an area downscale of both images (the photometric
#: ones; not sr4/sr8, whose inputs a resampling would change): ``refine_whole_view_tasks``.
WHOLE_VIEW_TASKS: tuple[str, ...] = ("pd", "ll", "hz", "oe", "lc")


def _spec(default: Any = MISSING, *, minimum: float | None = None, above: float | None = None,
          maximum: float | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its allowed range: ``>= minimum``, ``> above``, ``<= maximum`` or
    one of ``choices``."""
    metadata = {"minimum": minimum, "above": above, "maximum": maximum, "choices": choices}
    return field(default=default, metadata=metadata)


def _fail(where: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{where} must be {expected}, got {value!r}")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` converted to the annotated type ``hint``; ValueError naming ``where`` otherwise."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (UnionType, typing.Union):
        if value is None and NoneType in args:
            return None
        (inner,) = [a for a in args if a is not NoneType]
        return _coerce(value, inner, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise _fail(where, "true or false", value)
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, "an integer", value)
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _fail(where, "a number", value) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, "a number", value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _fail(where, "a string", value)
        return value
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[str, ...]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise _fail(where, "a list", value)
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin is tuple:  # fixed length
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _fail(where, f"a list of {len(args)} values", value)
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _fail(where, "a mapping", value)
        return {_coerce(k, args[0], f"{where} key"): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    raise TypeError(f"{where}: unsupported annotation {hint!r}")  # a programming error in this module


def _check_range(value: Any, metadata: Mapping[str, Any], where: str) -> None:
    items = value.values() if isinstance(value, dict) else value if isinstance(value, tuple) else (value,)
    for item in items:
        if item is None or isinstance(item, str | bool):
            continue
        if metadata.get("minimum") is not None and item < metadata["minimum"]:
            raise _fail(where, f">= {metadata['minimum']}", value)
        if metadata.get("above") is not None and item <= metadata["above"]:
            raise _fail(where, f"> {metadata['above']}", value)
        if metadata.get("maximum") is not None and item > metadata["maximum"]:
            raise _fail(where, f"<= {metadata['maximum']}", value)
    choices = metadata.get("choices")
    if choices and isinstance(value, tuple):  # a list of choices: each item is one of them
        for item in value:
            if item not in choices:
                raise _fail(where, f"a list of {', '.join(choices)}", value)
    elif choices and value not in choices:
        raise _fail(where, f"one of {', '.join(choices)}", value)


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """The keys both stages share. Sets are ``<dataset>/<split>`` names under ``data/shards`` or
    shard URLs; every ``*_every`` counts optimiser steps."""

    SECTION: ClassVar[str] = "stage"

    train_sets: tuple[str, ...]
    eval_sets: tuple[str, ...]
    steps: int = _spec(minimum=0)
    batch_size: int = _spec(minimum=1)
    crop: int = _spec(minimum=8)
    workers: int = _spec(0, minimum=0)
    lr: float = _spec(above=0)
    lr_min: float = _spec(1e-6, minimum=0)
    warmup_steps: int = _spec(0, minimum=0)
    weight_decay: float = _spec(0.0, minimum=0)
    betas: tuple[float, float] = _spec((0.9, 0.99), minimum=0)
    grad_clip: float = _spec(0.0, minimum=0)  # max gradient norm; 0 = no clipping
    log_every: int = _spec(10, minimum=1)
    eval_every: int = _spec(100, minimum=1)
    checkpoint_every: int = _spec(100, minimum=1)
    bf16: bool = True  # bfloat16 autocast (GPUs only)
    # the global batch of all processes together; None: ``batch_size`` per process (the global
    # batch then grows with the process count). Set, it is split: batch_size = global / processes.
    global_batch_size: int | None = _spec(None, minimum=1)
    compile: bool = False  # torch.compile the encoder, decoder and fusion module (in place)
    cudnn_benchmark: bool = True  # cuDNN autotuning (GPUs; off in the deterministic mode)
    tf32: bool = True  # TF32 matmuls and convolutions for the float32 parts (Ampere and newer GPUs)
    deterministic: bool = False  # torch.use_deterministic_algorithms + cuDNN deterministic (slower GPUs)
    require_gpu: bool = False  # refuse to train on a CPU (the paper profile); --allow-cpu overrides
    dist_timeout_s: float = _spec(1800.0, above=0)  # process-group timeout of every collective (torchrun)

    def __post_init__(self) -> None:
        for name, value in self._validated(vars(self), self.SECTION).items():
            object.__setattr__(self, name, value)
        if any(b >= 1 for b in self.betas):
            raise _fail(f"{self.SECTION}.betas", "two values in [0, 1)", list(self.betas))

    @classmethod
    def _validated(cls, data: Mapping[str, Any], section: str) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        out = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            where = f"{section}.{f.name}"
            out[f.name] = _coerce(data[f.name], hints[f.name], where)
            _check_range(out[f.name], f.metadata, where)
        return out

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any] | None, section: str | None = None) -> C:
        """Build from a parameter section; ``section`` names it in error messages (default: ``stage1``/``stage2``)."""
        section = section or cls.SECTION
        if not isinstance(data, Mapping):
            raise ValueError(f"{section} must be a mapping of training parameters, got {data!r}")
        valid = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in valid]
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} in {section}; valid keys: {', '.join(valid)}")
        missing = [f.name for f in fields(cls)
                   if f.name not in data and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise ValueError(f"{section} is missing the required key(s) {', '.join(missing)}")
        values = cls._validated(data, section)
        try:
            return cls(**values)
        except ValueError as error:  # cross-field checks name the default section: name the real one
            raise ValueError(str(error).replace(f"{cls.SECTION}.", f"{section}.", 1)) from None

    @classmethod
    def from_params(cls: type[C], params: Mapping[str, Any]) -> C:
        """The typed section of resolved parameters (``params[SECTION]``), named after its profile."""
        profile = params.get("profile")
        section = f"profiles.{profile}.{cls.SECTION}" if profile else cls.SECTION
        if cls.SECTION not in params:
            raise ValueError(f"the parameters have no {section} section")
        return cls.from_dict(params[cls.SECTION], section)

    def per_rank_batch(self, world_size: int) -> int:
        """The batch of one process: ``global_batch_size / world_size`` when the global batch is
        set (ValueError naming the key when it does not divide), else ``batch_size``."""
        if self.global_batch_size is None:
            return self.batch_size
        if self.global_batch_size % world_size:
            raise ValueError(f"{self.SECTION}.global_batch_size {self.global_batch_size} cannot be split over "
                             f"{world_size} processes: use a multiple of {world_size}")
        return self.global_batch_size // world_size

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists for tuples), every key present: what a run actually uses."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Stage1LossWeights:
    """Weights of ``L1 = L_task + a1 L_unified + a2 L_recon + a3 L_text (+ a_corr L_corr)``;
    ``task_gradient_weight`` weighs the edge term inside ``L_task``; ``unified_measure`` is one of
    ``UNIFIED_MEASURES``; ``correction_weight`` weighs ``L_corr``, the L1 distance of the globally
    corrected input to the clean image (ours; a model with a global correction only)."""

    task_gradient_weight: float
    unified_weight: float
    recon_weight: float
    text_weight: float
    unified_measure: str
    correction_weight: float = 0.0


@dataclass(frozen=True)
class Stage2LossWeights:
    """Weights of ``L2 = L_color + a1' L_grad + a2' L_per + a_int L_int``; ``perceptual`` selects
    ``L_per`` (one of ``PERCEPTUAL_TERMS``), ``perceptual_temperature`` its softmax temperature
    (``None``: the term's own default)."""

    gradient_weight: float
    perceptual_weight: float
    intensity_weight: float
    perceptual: str
    perceptual_temperature: float | None
    consistency_weight: float = 0.0
    detail_gradient_gain: float = 1.0
    detail_gradient_weight: float | None = None
    range_weight: float = 0.0
    range_band: float = 0.04

    def at_detail(self, detail: float) -> tuple[float, float]:
        """``(gradient weight, gradient target gain)`` at detail level ``detail`` in [0, 1]: linear
        from ``(gradient_weight, 1)`` at 0 to ``(detail_gradient_weight, detail_gradient_gain)`` at 1."""
        crisp_weight = self.gradient_weight if self.detail_gradient_weight is None else self.detail_gradient_weight
        return (self.gradient_weight + (crisp_weight - self.gradient_weight) * detail,
                1.0 + (self.detail_gradient_gain - 1.0) * detail)


def _pick(config: StageConfig, target: type) -> Any:
    return target(**{f.name: getattr(config, f.name) for f in fields(target)})


@dataclass(frozen=True, kw_only=True)
class Stage1Config(StageConfig):
    """Stage 1 (restoration). ``task_weights``: ``{task id: sampling weight}`` (``None``: the data's
    own frequencies); ``single_stage``: stage 1 also trains fusion with the stage-2 loss (ablation).

    Large-crop refinement (ours, after Restormer's progressive learning; 0 steps = off): after
    ``steps`` steps on ``crop`` pixels, ``refine_steps`` more on ``refine_crop`` pixels in batches
    of ``refine_batch_size``, with a fresh optimiser and their own warm-up/cosine schedule from
    ``refine_lr``. Global degradations (haze, infrared low contrast) depend on more of the image
    than a small crop shows. The refinement depends only on the weights the first ``steps`` left.
    ``refine_whole_view``: the probability that a refinement sample of a task in
    ``refine_whole_view_tasks`` shows its whole image, area-downscaled so that its shorter side is
    ``refine_crop`` (then cropped to a square as usual): the photometric degradations are global
    (low contrast pulls towards the *image* mean), and a whole view lets the global paths of the
    network (channel attention pools, transposed attention) learn the image-level range.
    Only photometric tasks may be listed: resampling would change the super-resolution inputs.
    ``refine_unified_weight``: the weight of ``L_unified`` during the refinement (``None``: ``unified_weight``).
    ``refine_task_weights``: the task sampling weights of the refinement (``None``: ``task_weights``);
    haze is learned mostly there, where the whole view shows its depth-dependent airlight.
    ``correction_weight`` / ``refine_correction_weight`` (``None``: ``correction_weight``): the
    weight of ``L_corr``, which supervises the global correction directly (see
    :class:`Stage1LossWeights`); 0 leaves it to the end-to-end loss alone.
    """

    SECTION: ClassVar[str] = "stage1"

    task_gradient_weight: float = _spec(minimum=0)
    unified_weight: float = _spec(minimum=0)
    recon_weight: float = _spec(minimum=0)
    text_weight: float = _spec(minimum=0)
    unified_measure: str = _spec("cosine", choices=UNIFIED_MEASURES)
    single_stage: bool = False
    task_weights: dict[str, float] | None = _spec(None, minimum=0)
    eval_samples_per_task: int = _spec(4, minimum=1)
    refine_steps: int = _spec(0, minimum=0)
    refine_crop: int = _spec(256, minimum=8)
    refine_batch_size: int = _spec(1, minimum=1)
    refine_lr: float = _spec(2.0e-4, above=0)
    refine_warmup_steps: int = _spec(10, minimum=0)
    refine_unified_weight: float | None = _spec(None, minimum=0)
    refine_whole_view: float = _spec(0.0, minimum=0, maximum=1)
    refine_whole_view_tasks: tuple[str, ...] = _spec(WHOLE_VIEW_TASKS, choices=WHOLE_VIEW_TASKS)
    refine_task_weights: dict[str, float] | None = _spec(None, minimum=0)
    correction_weight: float = _spec(0.0, minimum=0)
    refine_correction_weight: float | None = _spec(None, minimum=0)

    @property
    def loss_weights(self) -> Stage1LossWeights:
        return _pick(self, Stage1LossWeights)

    @property
    def refine_loss_weights(self) -> Stage1LossWeights:
        """The loss weights of the refinement phase."""
        weights = self.loss_weights
        if self.refine_unified_weight is not None:
            weights = replace(weights, unified_weight=self.refine_unified_weight)
        if self.refine_correction_weight is not None:
            weights = replace(weights, correction_weight=self.refine_correction_weight)
        return weights

    @property
    def refine_sampling_weights(self) -> dict[str, float] | None:
        """The task sampling weights of the refinement phase."""
        return self.task_weights if self.refine_task_weights is None else self.refine_task_weights


@dataclass(frozen=True, kw_only=True)
class Stage2Config(StageConfig):
    """Stage 2 (fusion). ``vgg16_weights``: torchvision's VGG16 file for ``perceptual: vgg``
    (``None``: the torch hub cache); ``eval_pairs``: validation pairs taken from ``eval_sets``.

    Degradation-aware stage 2 (ours; 0 and 0 = the paper): ``degraded_fraction`` of the training
    pairs is degraded on the fly and encoded with its task description, the loss then compares
    the fused image with the clean sources; ``consistency_weight`` adds the L1 distance to the
    current model's fusion of the clean pair with pseudo descriptions (no gradient through it).

    ``gamma_jitter`` (ours; 0 = the paper): the probability that a training source image is raised
    to a random power ``g`` (``log g`` uniform in ``log gamma_range``) before it is cropped; the
    fusion then learns from darker and brighter sources than the training cameras give.

    Detail control (ours; used when the model has ``model.detail_control``): each batch draws a
    detail level ``d`` in [0, 1] (0 or 1 with probability ``detail_endpoints``, half each, else
    uniform) that the fusion module reads; the gradient term's weight and its target (the
    sources' maximum Sobel magnitude times a gain) move linearly from ``gradient_weight`` and 1
    at ``d = 0`` to ``detail_gradient_weight`` and ``detail_gradient_gain`` at ``d = 1``.

    ``range_weight`` (ours; 0 = off) adds the no-new-clipping term (:func:`~lure.training.losses.range_loss`,
    the top and bottom ``range_band`` of [0, 1]) and computes the gradient term on the output
    clamped to [0, 1], so that out-of-range values earn no detail."""

    SECTION: ClassVar[str] = "stage2"

    gradient_weight: float = _spec(minimum=0)
    perceptual_weight: float = _spec(0.0, minimum=0)
    intensity_weight: float = _spec(0.0, minimum=0)
    perceptual: str = _spec("vgg", choices=PERCEPTUAL_TERMS)
    perceptual_temperature: float | None = _spec(None, above=0)
    vgg16_weights: str | None = None
    eval_pairs: int = _spec(8, minimum=1)
    degraded_fraction: float = _spec(0.0, minimum=0, maximum=1)
    consistency_weight: float = _spec(0.0, minimum=0)
    gamma_jitter: float = _spec(0.0, minimum=0, maximum=1)
    gamma_range: tuple[float, float] = _spec((0.5, 2.0), above=0)
    detail_gradient_gain: float = _spec(1.0, minimum=1)
    detail_gradient_weight: float | None = _spec(None, minimum=0)
    detail_endpoints: float = _spec(0.5, minimum=0, maximum=1)
    range_weight: float = _spec(0.0, minimum=0)
    range_band: float = _spec(0.04, minimum=0, maximum=0.5)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.gamma_range[0] > self.gamma_range[1]:
            raise _fail(f"{self.SECTION}.gamma_range", "two exponents low <= high", list(self.gamma_range))

    @property
    def loss_weights(self) -> Stage2LossWeights:
        return _pick(self, Stage2LossWeights)


@dataclass(frozen=True)
class TrainingConfig:
    """Both stage sections of one resolved parameter set (each stage reads the other: stage 1's
    ``single_stage`` ablation trains with the stage-2 loss, stage 2 then only re-exports)."""

    stage1: Stage1Config
    stage2: Stage2Config

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainingConfig:
        """Validate ``params["stage1"]`` and ``params["stage2"]`` (ValueError: one line naming the key)."""
        return cls(Stage1Config.from_params(params), Stage2Config.from_params(params))
