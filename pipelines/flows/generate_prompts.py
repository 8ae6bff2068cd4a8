"""Prefect flow ``generate-prompts``: paraphrase the seed task texts and write prompts/generated.json.

Called in-process by the DVC ``prompts`` stage (``pipelines/stages/generate_prompts.py``);
the texts and how they are kept: docs/paper-map.md#tasks-and-texts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from lure.paths import REPO_ROOT
from lure.text.prompt_generation import GenerationParams, generate_task_texts, write_output


def read_prompts_params(params_path: str | Path | None = None) -> dict[str, Any]:
    """The ``prompts`` section of params.yaml (empty when the file or section is absent)."""
    try:
        from lure.config import load_params
    except ImportError:  # lure.config not available: read the file directly
        import yaml

        path = Path(params_path) if params_path else REPO_ROOT / "params.yaml"
        if not path.is_file():
            return {}
        with open(path, encoding="utf-8") as handle:
            return dict((yaml.safe_load(handle) or {}).get("prompts") or {})
    try:
        return dict(load_params(params_path).get("prompts") or {})
    except FileNotFoundError:  # no params.yaml: the defaults of GenerationParams
        return {}


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except Exception:  # called outside a flow run (e.g. flow.fn)
        return logging.getLogger("lure.generate_prompts")


@flow(name="generate-prompts")
def generate_prompts(params: dict | None = None, out: str = "prompts/generated.json") -> dict:
    """Generate, filter and split the task texts; write ``out`` atomically.

    ``params``: the ``prompts`` section (default: read from params.yaml). Returns a summary:
    ``out``, ``stats`` (per key: candidates, kept, rejected by reason), ``load_s``, ``generate_s``,
    ``s_per_call`` (seconds per model call), ``model`` (file name and sha256).
    """
    log = _logger()
    gen_params = GenerationParams.from_dict(params if params is not None else read_prompts_params())
    doc = generate_task_texts(gen_params)
    out_path = Path(out)
    if not out_path.is_absolute():
        out_path = REPO_ROOT / out_path
    write_output(doc, out_path)
    run = doc["_run"]
    for key, stat in doc["stats"].items():
        log.info("%s: kept %d of %d candidates, rejected %s", key, stat["kept"], stat["candidates"],
                 stat["rejected"])
    log.info("model %s loaded in %.2f s; %d calls, %.3f s per call; wrote %s", doc["model"]["file"],
             run["load_s"], run["calls"], run["s_per_call"], out_path)
    return {"out": str(out_path), "stats": doc["stats"], "load_s": run["load_s"],
            "generate_s": run["generate_s"], "s_per_call": run["s_per_call"], "model": doc["model"]}
