"""The typed ``evaluate`` section of a profile: every default in one place, checked at load.

:meth:`EvaluationConfig.from_params` reads ``params["evaluate"]`` (the section
``profiles.<profile>.evaluate`` of ``params.yaml``) and rejects, with one line naming the key,
the section and what is allowed, an unknown (e.g. misspelled) key, a value of the wrong type or
an unknown degraded task. Unset keys take the defaults of the fields below.

Conventions: pair sets are ``<dataset>/<split>`` shard folders or ``folder:<path>`` (see
:mod:`lure.evaluation.pair_sets`); ``max_pairs`` counts pairs per set, 0 = all; relative paths
(``niqe_params``, ``reference_checkpoints``) resolve against the repository root.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from lure.inference import TilingConfig
from lure.text.vocabulary import DEGRADED_EVAL_TASKS

__all__ = ["DEGRADED_REFERENCES", "GRID_FOCUS", "EvaluationConfig", "GridConfig", "section_name"]

GRID_FOCUS = ("centre", "infrared")
DEGRADED_REFERENCES = ("inputs", "clean")


def section_name(params: Mapping[str, Any]) -> str:
    """Where the ``evaluate`` section of resolved ``params`` sits in params.yaml, for messages."""
    profile = params.get("profile")
    return f"profiles.{profile}.evaluate" if profile else "evaluate"


def _unknown_key(key: str, section: str, valid: list[str]) -> ValueError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(f"{section}: unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")


def _check_keys(data: Mapping[str, Any], valid: list[str], section: str) -> None:
    for key in data:
        if key not in valid:
            raise _unknown_key(str(key), section, valid)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _names(value: Any, where: str) -> tuple[str, ...]:
    """A list of strings (a single string counts as a list of one)."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a list of strings, got {value!r}")
    return tuple(value)


def _choice(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class GridConfig:
    """Qualitative grids: ``crop`` (pixels; an int for a square or ``(height, width)``, clipped
    to the smallest image), ``pairs`` (rows, the first pairs of a set), ``focus`` (``centre`` or
    ``infrared``: around the warmest area of the infrared input)."""

    crop: int | tuple[int, int] = 256
    pairs: int = 2
    focus: str = "centre"

    @classmethod
    def from_dict(cls, data: Any, section: str = "evaluate.grid") -> GridConfig:
        """From a params mapping such as ``{"crop": 128, "pairs": 2}``; unset keys keep their defaults."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"{section} must be a mapping such as {{crop: 256, pairs: 2}}, got {data!r}")
        _check_keys(data, [f.name for f in fields(cls)], section)
        crop = data.get("crop", cls.crop)
        if isinstance(crop, list | tuple):
            if len(crop) != 2 or not all(_is_int(c) and c > 0 for c in crop):
                raise ValueError(
                    f"{section}.crop must be a positive integer or [height, width], got {crop!r}"
                )
            crop = (crop[0], crop[1])
        else:
            crop = _int(crop, f"{section}.crop", 1)
        return cls(
            crop=crop,
            pairs=_int(data.get("pairs", cls.pairs), f"{section}.pairs"),
            focus=_choice(data.get("focus", cls.focus), f"{section}.focus", GRID_FOCUS),
        )


def _tiling(data: Any, section: str) -> TilingConfig:
    if data is None:
        return TilingConfig()
    if not isinstance(data, Mapping):
        raise ValueError(f"{section} must be a mapping such as {{mode: auto, tile: 768}}, got {data!r}")
    _check_keys(data, [f.name for f in fields(TilingConfig)], section)
    for key in ("tile", "overlap", "min_pixels"):
        if key in data:
            _int(data[key], f"{section}.{key}")
    try:
        return TilingConfig(**data)
    except ValueError as error:
        raise ValueError(f"{section}: {error}") from None


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} must be a pair set name such as demo/test, got {value!r}")
    return value


def _tasks(value: Any, where: str) -> tuple[str, ...]:
    tasks = _names(value, where)
    bad = [t for t in tasks if t not in DEGRADED_EVAL_TASKS]
    if bad:
        raise ValueError(f"{where}: unknown task(s) {bad}; known: {', '.join(DEGRADED_EVAL_TASKS)}")
    return tasks


def _count_or_none(value: Any, where: str) -> int | None:
    return None if value is None else _int(value, where)


def _path_or_none(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where} must be a path or null, got {value!r}")
    return value or None


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, got {value!r}")
    return value


def _named_paths(value: Any, where: str, what: str) -> dict[str, str]:
    value = {} if value is None else value
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{where} must map names to {what}, got {value!r}")
    return {str(k): v for k, v in value.items()}


def _checkpoints(value: Any, where: str) -> dict[str, str]:
    return _named_paths(value, where, "checkpoint paths")


@dataclass(frozen=True)
class EvaluationConfig:
    """The ``evaluate`` section of a profile (see the module docstring for conventions).

    ``degraded_max_pairs`` (pairs per degraded set) is ``max_pairs`` when unset;
    ``degraded_reference``: the sources the reference metrics of degraded tables compare against
    (``inputs``: the degraded inputs the method received; ``clean``: the clean pair).
    ``reference_checkpoints``: name -> checkpoint path of other models scored as extra rows of the
    vanilla tables. ``reference_fusions``: name -> folder of other methods' fused images
    (``<folder>/<set slug>/<stem>.png``, :mod:`lure.evaluation.reference_fusions`), scored as rows
    of the vanilla tables. ``restoration_per_task``: samples per task of each restoration set (0 = all).
    ``detail_curve``: detail levels in [0, 1] at which a model with detail control is scored on each
    clean set besides its default (table ``detail_curve_<set>``; empty or a model without the
    control: no table).
    """

    pair_sets: tuple[str, ...] = ("demo/test",)
    degraded_from: str = "demo/test"
    tasks: tuple[str, ...] = tuple(DEGRADED_EVAL_TASKS)
    max_pairs: int = 0
    niqe_params: str | None = "../shared/data/niqe/niqe_pris_params.npz"
    no_reference: tuple[str, ...] = ()
    degraded_reference: str = "inputs"
    degraded_max_pairs: int | None = None
    reference_checkpoints: Mapping[str, str] = field(default_factory=dict)
    reference_fusions: Mapping[str, str] = field(default_factory=dict)
    restoration_sets: tuple[str, ...] = ()
    restoration_per_task: int = 12
    grid: GridConfig = field(default_factory=GridConfig)
    tiling: TilingConfig = field(default_factory=TilingConfig)
    save_fused: bool = True
    detail_curve: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.degraded_max_pairs is None:
            object.__setattr__(self, "degraded_max_pairs", self.max_pairs)
        _tasks(self.tasks, "evaluate.tasks")
        _choice(self.degraded_reference, "evaluate.degraded_reference", DEGRADED_REFERENCES)

    @classmethod
    def keys(cls) -> list[str]:
        """The valid keys of the section, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> EvaluationConfig:
        """The config of resolved ``params`` (:func:`lure.config.load_params`); raises ``ValueError``
        with one line naming the offending key of ``profiles.<profile>.evaluate``."""
        return cls.from_dict(params.get("evaluate"), section_name(params))

    @classmethod
    def from_dict(cls, data: Any, section: str = "evaluate") -> EvaluationConfig:
        """From the raw section mapping (``None``: every default)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"{section} must be a mapping of evaluation settings, got {data!r}")
        _check_keys(data, cls.keys(), section)
        return cls(**{key: _PARSERS[key](value, f"{section}.{key}") for key, value in data.items()})


def _levels(value: Any, where: str) -> tuple[float, ...]:
    """A list of detail levels, each a number in [0, 1]."""
    if not isinstance(value, list | tuple) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1 for v in value):
        raise ValueError(f"{where} must be a list of detail levels in [0, 1], got {value!r}")
    return tuple(float(v) for v in value)


#: key -> ``parse(value, "<section>.<key>")``: the checked value of each key of the section.
_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "pair_sets": _names,
    "degraded_from": _text,
    "tasks": _tasks,
    "max_pairs": _int,
    "niqe_params": _path_or_none,
    "no_reference": _names,
    "degraded_reference": lambda value, where: _choice(value, where, DEGRADED_REFERENCES),
    "degraded_max_pairs": _count_or_none,
    "reference_checkpoints": _checkpoints,
    "reference_fusions": lambda value, where: _named_paths(value, where, "folders"),
    "restoration_sets": _names,
    "restoration_per_task": _int,
    "grid": GridConfig.from_dict,
    "tiling": _tiling,
    "save_fused": _bool,
    "detail_curve": lambda value, where: _levels(value, where),
}
