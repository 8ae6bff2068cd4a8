"""The task vocabulary shared by data preparation, prompts, training and inference.

A *task* is one degradation (or the pseudo-degradation ``pd``, plain reconstruction)
of one modality. Task ids are short strings; their integer class ids (used by the text
classifier head) follow the order of :data:`TASK_IDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

VISIBLE = 0
INFRARED = 1
MODALITY_NAMES = {VISIBLE: "visible", INFRARED: "infrared"}
MODALITY_IDS = {name: idx for idx, name in MODALITY_NAMES.items()}


@dataclass(frozen=True)
class Task:
    """One restoration task: its id, the modalities it applies to, and a short label."""

    id: str
    modalities: tuple[int, ...]
    label: str


TASKS: dict[str, Task] = {
    "pd": Task("pd", (VISIBLE, INFRARED), "pseudo-degradation (clean, reconstruct)"),
    "ll": Task("ll", (VISIBLE,), "low light"),
    "hz": Task("hz", (VISIBLE,), "haze"),
    "oe": Task("oe", (VISIBLE,), "over-exposure"),
    "lc": Task("lc", (INFRARED,), "low contrast"),
    "sr4": Task("sr4", (INFRARED,), "x4 super-resolution"),
    "sr8": Task("sr8", (INFRARED,), "x8 super-resolution"),
}
TASK_IDS: tuple[str, ...] = tuple(TASKS)
TASK_CLASS = {task_id: idx for idx, task_id in enumerate(TASK_IDS)}

#: Tasks allowed per modality (``pd`` first).
MODALITY_TASKS: dict[int, tuple[str, ...]] = {
    m: tuple(t for t, task in TASKS.items() if m in task.modalities) for m in MODALITY_NAMES
}

#: Prompt groups: one per (task, modality) pair, e.g. ``pd_visible``, ``ll``.
PROMPT_KEYS: tuple[str, ...] = ("pd_visible", "pd_infrared", "ll", "hz", "oe", "lc", "sr4", "sr8")


#: Degraded evaluation sets (docs/paper-map.md#evaluation): name -> (visible task, infrared
#: task); each single task with the other modality clean, and the combinations OE+LC and LL+LC.
DEGRADED_EVAL_TASKS: dict[str, tuple[str, str]] = {
    "ll": ("ll", "pd"),
    "hz": ("hz", "pd"),
    "oe": ("oe", "pd"),
    "lc": ("pd", "lc"),
    "sr4": ("pd", "sr4"),
    "sr8": ("pd", "sr8"),
    "oe+lc": ("oe", "lc"),
    "ll+lc": ("ll", "lc"),
}


def prompt_key(task_id: str, modality: int) -> str:
    """The prompt group of ``task_id`` on ``modality`` (``pd`` is split per modality)."""
    check_task(task_id, modality)
    return f"pd_{MODALITY_NAMES[modality]}" if task_id == "pd" else task_id


def check_task(task_id: str, modality: int) -> None:
    """Raise ``ValueError`` when ``task_id`` is unknown or not defined for ``modality``."""
    if modality not in MODALITY_NAMES:
        raise ValueError(f"modality must be 0 (visible) or 1 (infrared), got {modality!r}")
    if task_id not in TASKS:
        raise ValueError(f"unknown task {task_id!r}; known tasks: {', '.join(TASK_IDS)}")
    if modality not in TASKS[task_id].modalities:
        allowed = ", ".join(MODALITY_TASKS[modality])
        raise ValueError(
            f"task {task_id!r} is not defined for the {MODALITY_NAMES[modality]} image; "
            f"supported {MODALITY_NAMES[modality]} tasks: {allowed}"
        )


@dataclass(frozen=True)
class TaskPlan:
    """The task per modality: ``visible`` in ``pd, ll, hz, oe``; ``infrared`` in ``pd, lc, sr4, sr8``;
    and the detail level the request asked for (0 faithful .. 1 crisp; ``None``: the model's default)."""

    visible: str = "pd"
    infrared: str = "pd"
    detail: float | None = None

    def __post_init__(self) -> None:
        check_task(self.visible, VISIBLE)
        check_task(self.infrared, INFRARED)
        if self.detail is not None and not 0.0 <= self.detail <= 1.0:
            raise ValueError(f"detail must lie in [0, 1] (0 faithful, 1 crisp), got {self.detail}")

    def task(self, modality: int) -> str:
        """The task id of ``modality`` (0 visible, 1 infrared)."""
        return self.visible if modality == VISIBLE else self.infrared

    def as_dict(self) -> dict[str, str | float]:
        """``{"visible", "infrared"}`` tasks, and ``"detail"`` when the plan sets one."""
        tasks: dict[str, str | float] = {"visible": self.visible, "infrared": self.infrared}
        return tasks if self.detail is None else {**tasks, "detail": self.detail}
