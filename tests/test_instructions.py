"""The rule-based request parser: a table of phrasings with their expected plans, and the errors."""

from __future__ import annotations

import pytest

from lure.text.canonical import load_seeds
from lure.text.parser import InstructionError, analyse, describe_supported, parse
from lure.text.vocabulary import INFRARED, MODALITY_TASKS, VISIBLE, TaskPlan

# (request, visible task, infrared task)
PHRASINGS = [
    # the example and empty requests
    ("the visible image is too dark and the thermal one is blurry, upscale 4x", "ll", "sr4"),
    ("", "pd", "pd"),
    ("   ", "pd", "pd"),
    # single degradations, modality named
    ("The visible image is too dark", "ll", "pd"),
    ("the RGB photo was taken at night", "ll", "pd"),
    ("The colour image is dim and underexposed", "ll", "pd"),
    ("this optical picture is poorly lit", "ll", "pd"),
    ("The visible image is hazy", "hz", "pd"),
    ("dehaze the RGB image", "hz", "pd"),
    ("the visible picture is foggy and misty", "hz", "pd"),
    ("there is smog in the optical image", "hz", "pd"),
    ("The visible image is overexposed", "oe", "pd"),
    ("the RGB image is too bright", "oe", "pd"),
    ("there is glare on the visible photo", "oe", "pd"),
    ("the colour image has washed-out highlights", "oe", "pd"),
    ("The infrared image has low contrast", "pd", "lc"),
    ("the thermal image looks flat", "pd", "lc"),
    ("the LWIR frame is faint", "pd", "lc"),
    ("the IR image is washed out", "pd", "lc"),
    ("The infrared image is blurry", "pd", "sr4"),
    ("the thermal image is low-resolution", "pd", "sr4"),
    ("upscale the IR image ×4", "pd", "sr4"),
    ("super-resolve the thermal image by a factor of four", "pd", "sr4"),
    ("upscale the infrared image 8x", "pd", "sr8"),
    ("the thermal image needs x8 super-resolution", "pd", "sr8"),
    ("enlarge the LWIR image eight times", "pd", "sr8"),
    ("the infrared image is extremely blurry", "pd", "sr8"),
    ("the infrared image is extremely blurry, upscale 4x", "pd", "sr4"),
    # no modality word: the only modality that has the degradation
    ("too dark", "ll", "pd"),
    ("please remove the fog", "hz", "pd"),
    ("upscale 8x", "pd", "sr8"),
    ("boost the contrast", "pd", "lc"),
    # both modalities in one request
    ("The RGB photo is foggy and the IR frame has low contrast", "hz", "lc"),
    ("dark visible image, blurry infrared image", "ll", "sr4"),
    ("The visible image has blown-out highlights and the infrared looks low-res, please upscale eight times",
     "oe", "sr8"),
    ("Brighten the underexposed visible image and keep the infrared as is", "ll", "pd"),
    ("the thermal image is blurry, upscale 8x, and the visible one is hazy", "hz", "sr8"),
    ("for the infrared image, upscale it 8x", "pd", "sr8"),
    ("The visible image is dark, the other one is fine", "ll", "pd"),
    ("The infrared image is faint; the visible image is overexposed.", "oe", "lc"),
    # clean statements
    ("both images are clean", "pd", "pd"),
    ("everything is fine", "pd", "pd"),
    ("The visible image is clean; reconstruct it faithfully.", "pd", "pd"),
    ("reconstruct the thermal image", "pd", "pd"),
    ("fuse the visible and infrared images", "pd", "pd"),
    ("the visible image is fine but the infrared needs upscaling x8", "pd", "sr8"),
    ("the visible image looks ok and the thermal image is flat", "pd", "lc"),
    # negations
    ("the infrared is not blurry", "pd", "pd"),
    ("the visible image isn't too dark", "pd", "pd"),
    ("no haze in the visible image, but the infrared is low resolution", "pd", "sr4"),
    ("the visible image isn't hazy and the infrared isn't blurry", "pd", "pd"),
    ("the infrared image needs no upscaling", "pd", "pd"),
    ("neither image is degraded", "pd", "pd"),
    ("the thermal image is noise-free but blurry", "pd", "sr4"),
    ("the visible image is not dark, it is hazy", "hz", "pd"),
    ("the infrared image is not hazy", "pd", "pd"),
    ("restore the undegraded visible image as it is", "pd", "pd"),
    # scene words that are not degradations on that modality
    ("the infrared image taken at night is blurry", "pd", "sr4"),
]

# (request, fragment that the error message must contain)
ERRORS = [
    ("it is raining", "rain"),
    ("remove the snow from the visible image", "snow"),
    ("the visible image has noise", "noise"),
    ("the infrared image has stripes", "stripes"),
    ("the visible image has motion blur", "motion blur"),
    ("the infrared image is hazy", "hazy"),
    ("dehaze the thermal image", "dehaze"),
    ("the thermal image is blurry and hazy", "hazy"),
    ("for the infrared image, remove the haze", "haze"),
    ("the thermal image is dark", "dark"),
    ("the visible image is blurry", "blurry"),
    ("upscale the visible image 4x", "upscal"),
    ("the visible image has low contrast", "low contrast"),
    ("the visible image is dark and hazy", "several degradations"),
    ("the visible image is clean but too dark", "clean"),
    ("upscale the thermal image 4x and 8x", "x4 and x8"),
    ("upscale the thermal image 2x", "x2"),
    ("fix the visible image", "fix"),
    ("the thermal image is unclean", "unclean"),
    ("the visible image is not clean", "clean"),
    ("make it pretty", "no modality, degradation or clean statement"),
    ("washed out", "say which one"),
    ("?!", "no words"),
]


@pytest.mark.parametrize(("text", "visible", "infrared"), PHRASINGS)
def test_phrasing_gives_expected_plan(text: str, visible: str, infrared: str) -> None:
    assert parse(text) == TaskPlan(visible=visible, infrared=infrared)


def test_table_is_large_and_covers_every_task() -> None:
    assert len(PHRASINGS) >= 40
    assert {v for _, v, _ in PHRASINGS} == set(MODALITY_TASKS[VISIBLE])
    assert {i for _, _, i in PHRASINGS} == set(MODALITY_TASKS[INFRARED])


@pytest.mark.parametrize(("text", "fragment"), ERRORS)
def test_unservable_request_raises_one_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(InstructionError) as info:
        parse(text)
    message = str(info.value)
    assert fragment in message
    # the message lists the supported tasks per modality
    for task in (*MODALITY_TASKS[VISIBLE], *MODALITY_TASKS[INFRARED]):
        assert task in message
    assert "visible:" in message and "infrared:" in message
    assert info.value.problems and isinstance(info.value, ValueError)


def test_describe_supported_lists_each_modality_and_task() -> None:
    text = describe_supported()
    for label in ("low light", "haze", "over-exposure", "low contrast", "x4 super-resolution",
                  "x8 super-resolution"):
        assert label in text


def test_fallback_is_used_only_when_the_rules_recognise_nothing() -> None:
    calls: list[str] = []

    def fallback(text: str) -> TaskPlan:
        calls.append(text)
        return TaskPlan("hz", "pd")

    assert parse("make it pretty", fallback=fallback) == TaskPlan("hz", "pd")
    assert parse("the thermal image is blurry", fallback=fallback) == TaskPlan("pd", "sr4")
    with pytest.raises(InstructionError):  # an explicit problem is never handed to the fallback
        parse("the infrared image is hazy", fallback=fallback)
    assert calls == ["make it pretty"]


def test_plan_rejects_a_task_on_the_wrong_modality() -> None:
    with pytest.raises(ValueError):
        TaskPlan(visible="sr4")
    with pytest.raises(ValueError):
        TaskPlan(infrared="hz")
    assert TaskPlan().as_dict() == {"visible": "pd", "infrared": "pd"}


def test_analyse_reports_the_named_modalities() -> None:
    assert analyse("upscale 8x").mentioned == frozenset()
    assert analyse("the thermal image is blurry").mentioned == {INFRARED}
    assert analyse("the visible and infrared images are fine").mentioned == {VISIBLE, INFRARED}


def test_every_seed_reads_as_its_own_task() -> None:
    from lure.text.prompt_generation import reads_as

    for key, seeds in load_seeds().items():
        for seed in seeds:
            assert reads_as(seed, key) is None, (key, seed)


def test_non_string_request_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]
