"""The paraphrase filter, the real SmolLM2 generator on a small request, and prompts/generated.json."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from lure.fileio import sha256_file
from lure.text.canonical import GENERATED_PATH, SEEDS_PATH, canonical_text, load_seeds, load_task_texts
from lure.text.prompt_generation import (
    GenerationParams,
    generate_for_key,
    judge_candidate,
    normalise,
    reads_as,
    split_texts,
    write_output,
)
from lure.text.vocabulary import PROMPT_KEYS

PARAMS = GenerationParams()

# (candidate, prompt key, expected verdict: None = kept, else the rejection reason)
CANDIDATES = [
    ("Please make the dark visible picture brighter.", "ll", None),
    ("The RGB photo was shot at night; lift its exposure.", "ll", None),
    ("Remove the fog covering the visible scene.", "hz", None),
    ("Reduce the glare in this overexposed visible photo.", "oe", None),
    ("Make the faint thermal image stand out with more contrast.", "lc", None),
    ("Enlarge the blurry IR picture four times.", "sr4", None),
    ("Upscale the heavily blurred thermal image by 8.", "sr8", None),
    ("Reconstruct the visible image exactly.", "pd_visible", None),
    ("The thermal frame is clean, keep it unchanged.", "pd_infrared", None),
    # chat artefacts
    ("Sure, here is the dark visible image brightened.", "ll", "artefact"),
    ('"Brighten the dark visible image."', "ll", "artefact"),
    ("1. Brighten the dark visible image.", "ll", "artefact"),
    ("Paraphrase: brighten the dark visible image.", "ll", "artefact"),
    ("Brighten the dark visible image.\nDehaze it too.", "ll", "artefact"),
    ("Ix8x8RISCVSREIBWNKYTNFKOESMZAXAXXGASVBESDVNXEB infrared 8x", "sr8", "artefact"),
    ("Enlarge the thermal image 4x. It is now high-res. Increase resolution by 4.", "sr4", "too_many_sentences"),
    # length
    ("", "ll", "empty"),
    ("   ", "hz", "empty"),
    ("Dark RGB.", "ll", "too_short"),
    ("The visible image is too dark " + "and really needs brightening " * 8, "ll", "too_long"),
    # duplicates of a seed after normalisation
    ("the visible image is too dark, brighten it", "ll", "duplicate"),
    ("THE INFRARED IMAGE IS BLURRY -- UPSCALE IT 4X", "sr4", "duplicate"),
    # the parser's read-back
    ("Make the visible photo look nice and crisp.", "ll", "wrong_task"),  # lost its degradation
    ("The visible image is hazy; clear the haze.", "ll", "wrong_task"),  # names another task
    ("Upscale the thermal image eight times.", "sr4", "wrong_task"),  # x8 is another key
    ("Reconstruct the hazy visible image.", "pd_visible", "wrong_task"),
    ("Brighten this dark photo.", "ll", "no_modality"),
    ("The visible image is clean and crisp.", "pd_infrared", "no_modality"),
    ("Brighten the dark visible image and fuse it with the thermal one.", "ll", "other_modality"),
    ("The thermal image is too dark, brighten it.", "ll", "parse_error"),  # ll on infrared
    ("Improve the quality of the visible image.", "pd_visible", "parse_error"),  # vague repair
    ("Remove the rain streaks from the visible photo.", "hz", "parse_error"),
]


@pytest.mark.parametrize(("text", "key", "expected"), CANDIDATES)
def test_filter_verdict_on_hand_written_candidate(text: str, key: str, expected: str | None) -> None:
    seen = {normalise(s) for s in load_seeds()[key]}
    assert judge_candidate(text, key, seen, PARAMS) == expected


def test_filter_rejects_a_repeat_of_a_kept_candidate() -> None:
    seen: set[str] = set()
    text = "Please make the dark visible picture brighter."
    assert judge_candidate(text, "ll", seen, PARAMS) is None
    seen.add(normalise(text))
    assert judge_candidate("please, make the dark visible picture brighter!", "ll", seen, PARAMS) == "duplicate"


def test_split_is_deterministic_disjoint_and_non_empty() -> None:
    texts = [f"text number {i}" for i in range(10)]
    train, held = split_texts("ll", texts, 0.25)
    assert (train, held) == split_texts("ll", list(texts), 0.25)
    assert len(held) == 3 and len(train) == 7 and not set(train) & set(held)
    assert sorted(train + held) == sorted(texts)
    assert split_texts("ll", ["only one"], 0.25) == (["only one"], [])
    assert split_texts("ll", ["a", "b"], 0.01)[1] in (["a"], ["b"])


def test_params_reject_unknown_and_bad_values() -> None:
    with pytest.raises(ValueError, match="temprature"):
        GenerationParams.from_dict({"temprature": 0.5})
    with pytest.raises(ValueError):
        GenerationParams.from_dict({"heldout_fraction": 1.5})
    assert GenerationParams.from_dict(asdict(PARAMS)) == PARAMS


def test_write_output_is_atomic_and_drops_private_keys(tmp_path) -> None:
    out = write_output({"texts": {"ll": {"train": ["a"], "heldout": []}}, "_run": {"x": 1}}, tmp_path / "g.json")
    assert json.loads(out.read_text()) == {"texts": {"ll": {"train": ["a"], "heldout": []}}}
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]


def test_canonical_text_is_the_first_seed() -> None:
    seeds = load_seeds()
    for key in PROMPT_KEYS:
        assert canonical_text(key) == seeds[key][0]
        assert reads_as(canonical_text(key), key) is None
    with pytest.raises(ValueError):
        canonical_text("rain")


def _real_model():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from lure.text.prompt_generation import default_model_path, load_model

    try:
        path = default_model_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    return load_model(path, n_threads=1)


@pytest.mark.slow
def test_real_model_small_request_is_reproducible_and_filter_agrees_with_parser() -> None:
    llm = _real_model()
    params = GenerationParams(count=4, max_candidates=5, seed=7)
    seeds = load_seeds()
    results = {}
    for key_index, key in ((2, "ll"), (7, "sr8")):
        kept, records = generate_for_key(llm, key, key_index, seeds[key], params)
        again_kept, again_records = generate_for_key(llm, key, key_index, seeds[key], params)
        assert records == again_records and kept == again_kept  # same seed => same text
        assert len({r["seed"] for r in records}) == len(records)  # distinct seeds per call
        assert records and all(r["text"] for r in records)  # the model answered every call
        # the verdicts are those of the filter, and its read-back agrees with the parser
        seen = {normalise(s) for s in seeds[key]}
        for record in records:
            verdict = judge_candidate(record["text"], key, seen, params)
            assert record["verdict"] == (verdict or "kept")
            if verdict is None:
                seen.add(normalise(record["text"]))
                assert reads_as(record["text"], key) is None
            elif verdict in {"parse_error", "no_modality", "other_modality", "wrong_task"}:
                assert reads_as(record["text"], key) == verdict
        assert kept == [r["text"] for r in records if r["verdict"] == "kept"]
        results[key] = records
    assert results["ll"][0]["text"] != results["sr8"][0]["text"]


def test_committed_generated_json_is_consistent() -> None:
    if not GENERATED_PATH.is_file():
        pytest.fail(f"{GENERATED_PATH} is missing: run `python -m pipelines.stages.generate_prompts`")
    doc = json.loads(GENERATED_PATH.read_text(encoding="utf-8"))
    texts = load_task_texts()
    seeds = load_seeds()
    assert set(texts) == set(PROMPT_KEYS)
    assert doc["seeds_sha256"] == sha256_file(SEEDS_PATH), "seeds changed: regenerate prompts/generated.json"
    assert doc["model"]["file"].endswith(".gguf") and len(doc["model"]["sha256"]) == 64
    params = GenerationParams.from_dict(doc["params"])
    for key in PROMPT_KEYS:
        train, held = texts[key]["train"], texts[key]["heldout"]
        assert train and held, key
        assert train[: len(seeds[key])] == seeds[key]
        assert not {normalise(t) for t in train} & {normalise(t) for t in held}, key
        for text in train + held:
            assert reads_as(text, key) is None, (key, text)
            assert params.min_chars <= len(text) <= params.max_chars
        stats = doc["stats"][key]
        assert stats["kept"] == len(train) + len(held) - len(seeds[key])
        assert stats["candidates"] == stats["kept"] + sum(stats["rejected"].values())


def test_dvc_prompts_stage_stays_frozen():
    """llama.cpp sampling differs across CPUs and builds: ``dvc repro`` must not rewrite the task
    texts every trained model (the shipped weights included) depends on."""
    import yaml

    from lure.paths import REPO_ROOT

    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["prompts"].get("frozen") is True
