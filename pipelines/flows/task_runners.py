"""The Prefect task runner that writes the shards: ``threads`` (one process), ``dask`` or ``ray``
(``data.task_runner``, options from ``data.task_runner_options``; README: pointing them at a cluster)."""

from __future__ import annotations

import importlib
import os

from prefect.task_runners import ThreadPoolTaskRunner

#: name -> (module, class, pip package) of the task runners that live in Prefect integrations.
INTEGRATION_RUNNERS = {
    "dask": ("prefect_dask", "DaskTaskRunner", "prefect-dask (and dask.distributed)"),
    "ray": ("prefect_ray", "RayTaskRunner", "prefect-ray"),
}


def make_task_runner(name: str | None, options: dict | None = None):
    """The task runner called ``name`` (``threads``/``local``/``None``, ``dask``, ``ray``)."""
    options = dict(options or {})
    if name in (None, "", "threads", "local", "thread"):
        # one thread per core unless told otherwise: Prefect's default is one thread per task, and a
        # split of hundreds of shards would then hold hundreds of shards' images at once
        options.setdefault("max_workers", os.cpu_count() or 1)
        return ThreadPoolTaskRunner(**options)
    if name not in INTEGRATION_RUNNERS:
        raise ValueError(f"unknown task_runner {name!r}; use threads, dask or ray")
    module, cls, package = INTEGRATION_RUNNERS[name]
    try:
        runner = getattr(importlib.import_module(module), cls)
    except ImportError as err:
        raise ImportError(f"task_runner {name!r} needs {package}: pip install {package.split()[0]}; "
                          "or set data.task_runner: threads") from err
    return runner(**options)
