"""The Prefect task runner that writes the shards: ``threads`` (one process), ``dask`` or ``ray``
(``data.task_runner``, options from ``data.task_runner_options``; README: pointing them at a cluster)."""

from __future__ import annotations

import os

from prefect.task_runners import ThreadPoolTaskRunner


def make_task_runner(name: str | None, options: dict | None = None):
    """The task runner called ``name`` (``threads``/``local``/``None``, ``dask``, ``ray``)."""
    options = dict(options or {})
    if name in (None, "", "threads", "local", "thread"):
        # one thread per core unless told otherwise: Prefect's default is one thread per task, and a
        # split of hundreds of shards would then hold hundreds of shards' images at once
        options.setdefault("max_workers", os.cpu_count() or 1)
        return ThreadPoolTaskRunner(**options)
    if name == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as err:
            raise ImportError("task_runner 'dask' needs prefect-dask: pip install prefect-dask "
                              "(and dask.distributed); or set data.task_runner: threads") from err
        return DaskTaskRunner(**options)
    if name == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError as err:
            raise ImportError("task_runner 'ray' needs prefect-ray: pip install prefect-ray; "
                              "or set data.task_runner: threads") from err
        return RayTaskRunner(**options)
    raise ValueError(f"unknown task_runner {name!r}; use threads, dask or ray")
