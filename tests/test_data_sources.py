"""Source parsers against small trees in the exact published layouts (stray files, upper-case
extensions, missing partners, mixed grey/RGB), and the folder source on the shared real data."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from data_prep.sources import PARSERS, SourceLayoutError, get_parser, load_image
from data_prep.sources import demo as demo_source
from lure.text.vocabulary import INFRARED, VISIBLE
from tests.data_fixtures import trees


def _tasks(records) -> Counter:
    return Counter((r.task, r.modality) for r in records)


def _assert_loadable(parsed) -> None:
    """Every referenced image loads with the modality's convention."""
    for recs in parsed.stage1.values():
        for r in recs:
            lq, hq = load_image(r.lq, r.modality), load_image(r.hq, r.modality)
            assert lq.dtype == np.uint8 and hq.dtype == np.uint8
            assert lq.ndim == (3 if r.modality == VISIBLE else 2)
            assert hq.ndim == lq.ndim
    for recs in parsed.fusion.values():
        for r in recs:
            assert load_image(r.ir, INFRARED).ndim == 2
            vi = load_image(r.vi, VISIBLE)
            assert vi.ndim == 3 and vi.shape[2] == 3


def test_lol(tmp_path):
    parsed = get_parser("lol")(trees.lol_tree(tmp_path / "LOLdataset"))
    assert _tasks(parsed.stage1["train"]) == {("ll", VISIBLE): 2, ("pd", VISIBLE): 2}  # 1 and 22
    assert _tasks(parsed.stage1["test"]) == {("ll", VISIBLE): 1, ("pd", VISIBLE): 1}  # 10.PNG <-> 10.png
    assert sorted(r.name for r in parsed.stage1["train"] if r.task == "ll") == ["our485/1", "our485/22"]
    # the two partner-less files are reported, the stray files are not
    assert len(parsed.skipped) == 2
    assert any("2.png" in s and "high" in s for s in parsed.skipped)
    assert any("3.png" in s and "low" in s for s in parsed.skipped)
    grey = next(r for r in parsed.stage1["train"] if r.name == "our485/22" and r.task == "ll")
    assert load_image(grey.lq, VISIBLE).shape == (24, 32, 3)  # grey visible turned RGB
    _assert_loadable(parsed)


def test_lol_parent_folder_and_bad_root(tmp_path):
    trees.lol_tree(tmp_path / "archive" / "LOLdataset")
    assert len(get_parser("lol")(tmp_path / "archive").stage1["train"]) == 4  # found one level down
    with pytest.raises(SourceLayoutError, match="our485"):
        get_parser("lol")(tmp_path / "empty_does_not_exist")


def test_reside(tmp_path):
    parsed = get_parser("reside")(trees.reside_tree(tmp_path))
    train = _tasks(parsed.stage1["train"])
    assert train == {("hz", VISIBLE): 3, ("pd", VISIBLE): 2}  # ITS 1_1, 1_2, OTS 0001; clears 1 and 0001
    assert _tasks(parsed.stage1["test"]) == {("hz", VISIBLE): 2, ("pd", VISIBLE): 2}
    its = [r for r in parsed.stage1["train"] if r.task == "hz" and r.name.startswith("ITS")]
    assert {r.hq.name for r in its} == {"1.png"}
    assert any("5_1_0.8.png" in s for s in parsed.skipped)
    outdoor = next(r for r in parsed.stage1["test"] if "outdoor" in r.name and r.task == "hz")
    assert outdoor.hq.name == "0001.png" and outdoor.lq.suffix == ".jpg"  # extension ignored when pairing
    _assert_loadable(parsed)
    only_sots = get_parser("reside")(tmp_path, subsets=["sots"])
    assert set(only_sots.stage1) == {"test"}


def test_exposure_errors(tmp_path):
    parsed = get_parser("exposure_errors")(trees.exposure_tree(tmp_path))
    train = parsed.stage1["train"]
    assert _tasks(train) == {("oe", VISIBLE): 2, ("pd", VISIBLE): 1}  # P1 and P1.5 only
    assert sorted(r.lq.name for r in train if r.task == "oe") == ["a0001-jmac_DSC1459_P1.5.JPG",
                                                                  "a0001-jmac_DSC1459_P1.JPG"]
    assert _tasks(parsed.stage1["val"]) == {("oe", VISIBLE): 1, ("pd", VISIBLE): 1}
    assert _tasks(parsed.stage1["test"]) == {("oe", VISIBLE): 1, ("pd", VISIBLE): 1}  # expert_c GT
    assert any("a0002-kme_264_P1.JPG" in s for s in parsed.skipped)
    _assert_loadable(parsed)


def test_ems(tmp_path):
    parsed = get_parser("ems")(trees.ems_tree(tmp_path / "EMS"))
    train = _tasks(parsed.stage1["train"])
    assert train[("lc", INFRARED)] == 1  # 00002N has no Infrared_gt partner
    assert train[("ll", VISIBLE)] == 2 and train[("oe", VISIBLE)] == 2
    assert train[("pd", INFRARED)] == 1 and train[("pd", VISIBLE)] == 4
    assert not any(r.key.startswith("ems_IR_Noise") for r in parsed.stage1["train"])
    assert any("IR_Noise" in s and "not used" in s for s in parsed.skipped)
    assert any("00002N" in s for s in parsed.skipped)
    assert len(parsed.fusion["test"]) == 1
    _assert_loadable(parsed)


def test_llvip_msrs_m3fd_roadscene(tmp_path):
    llvip = get_parser("llvip")(trees.llvip_tree(tmp_path / "LLVIP"))
    assert (len(llvip.fusion["train"]), len(llvip.fusion["test"])) == (2, 1)
    assert any("190002" in s for s in llvip.skipped)
    msrs = get_parser("msrs")(trees.msrs_tree(tmp_path / "MSRS"))
    assert (len(msrs.fusion["train"]), len(msrs.fusion["test"])) == (1, 2)
    assert {r.extra["time"] for r in msrs.fusion["test"]} == {"day", "night"}
    m3fd = get_parser("m3fd")(trees.m3fd_tree(tmp_path / "m3fd"))
    assert len(m3fd.fusion["test"]) == 2 and any("00002" in s for s in m3fd.skipped)
    road = get_parser("roadscene")(trees.roadscene_tree(tmp_path / "RoadScene-master"))
    assert len(road.fusion["test"]) == 2 and road.skipped == []
    for parsed in (llvip, msrs, m3fd, road):
        _assert_loadable(parsed)
        keys = [r.key for recs in parsed.fusion.values() for r in recs]
        assert len(keys) == len(set(keys)) and all("." not in k for k in keys)


def test_folder_source(tmp_path):
    trees.folder_tree(tmp_path / "a", n=3)
    trees.write_image(tmp_path / "a/vi/extra.png")
    parsed = get_parser("folder")(tmp_path / "a", split="train", name="mine")
    assert len(parsed.fusion["train"]) == 3 and len(parsed.skipped) == 1
    with pytest.raises(SourceLayoutError, match="ir/ and vi/"):
        get_parser("folder")(tmp_path)
    assert set(PARSERS) >= {"lol", "reside", "exposure_errors", "ems", "llvip", "msrs", "m3fd", "roadscene",
                            "folder", "demo"}
    with pytest.raises(ValueError, match="known sources"):
        get_parser("nope")


def test_folder_source_on_shared_data(shared_data):
    folder = get_parser("folder")
    assert len(folder(shared_data / "roadscene").fusion["test"]) == 221
    llvip = folder(splits={"train": shared_data / "llvip/train", "test": shared_data / "llvip/test"})
    assert (len(llvip.fusion["train"]), len(llvip.fusion["test"])) == (32, 12)
    assert len(folder(shared_data / "msrs").fusion["test"]) == 5
    first = llvip.fusion["test"][0]
    assert load_image(first.ir, INFRARED).shape == (1024, 1280)  # 3-channel grey IR stored as one channel


def test_demo_source_is_seeded_and_structured():
    a = demo_source.parse(train=3, test=2, seed=5)
    b = demo_source.parse(train=3, test=2, seed=5)
    c = demo_source.parse(train=3, test=2, seed=6)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    ir_a, vi_a = load_image(a.fusion["train"][0].ir, INFRARED), load_image(a.fusion["train"][0].vi, VISIBLE)
    assert ir_a.shape == (128, 160) and vi_a.shape == (128, 160, 3)
    assert np.array_equal(vi_a, load_image(b.fusion["train"][0].vi, VISIBLE))
    assert not np.array_equal(vi_a, load_image(c.fusion["train"][0].vi, VISIBLE))
    # train and test scenes differ
    assert not np.array_equal(vi_a, load_image(a.fusion["test"][0].vi, VISIBLE))
    # every task of both modalities, one triplet per scene and task
    assert _tasks(a.stage1["train"]) == {(t, VISIBLE): 3 for t in ("pd", "ll", "hz", "oe")} | {
        (t, INFRARED): 3 for t in ("pd", "lc", "sr4", "sr8")}
    # real structure: edges and contrast in both modalities, and heat not a function of colour
    for img in (ir_a.astype(float), vi_a.mean(axis=2)):
        assert img.std() > 15
        assert np.abs(np.diff(img, axis=1)).max() > 40
    grey_vi = vi_a.mean(axis=2)
    corr = np.corrcoef(grey_vi.ravel(), ir_a.ravel())[0, 1]
    assert abs(corr) < 0.9
    # infrared has less fine detail than visible (a smooth, texture-free temperature field)
    hf = lambda x: np.abs(np.diff(x, axis=1)).mean()  # noqa: E731
    assert hf(ir_a.astype(float)) < hf(grey_vi)


def test_demo_infrared_sensor_noise_follows_its_parameters():
    clean = demo_source.render_scene(5, ir_noise=0.0, ir_stripe_noise=0.0)[0].astype(float) / 255
    noisy = demo_source.render_scene(5, ir_noise=0.006, ir_stripe_noise=0.004)[0].astype(float) / 255
    noise = noisy - clean
    stripes = noise.mean(axis=0)  # one fixed-pattern offset per column (+ the mean of 128 draws)
    assert 0.0025 < stripes.std() < 0.0055
    assert 0.0045 < (noise - stripes).std() < 0.0075
    # the visible image does not depend on the infrared noise
    assert np.array_equal(demo_source.render_scene(5, ir_noise=0.0)[1], demo_source.render_scene(5)[1])
    # lower resolution infrared (ir_scale 2) loses fine detail: bicubic x4 recovers more of it
    from data_prep.degradations import degrade

    def sr4_psnr(ir: np.ndarray) -> float:
        return 10 * np.log10(255.0**2 / np.mean((degrade(ir, "sr4", 0).astype(float) - ir) ** 2))

    sharp = demo_source.render_scene(5, ir_noise=0.0, ir_stripe_noise=0.0)[0]
    soft = demo_source.render_scene(5, ir_scale=2, ir_noise=0.0, ir_stripe_noise=0.0)[0]
    assert sr4_psnr(sharp) + 1.0 < sr4_psnr(soft)


def test_folder_holdout_split_by_name_and_scale(tmp_path):
    trees.folder_tree(tmp_path / "a", n=11, size=(40, 48))
    parsed = get_parser("folder")(tmp_path / "a", split="train", name="rs", holdout_every=5, scale=0.5)
    stems = sorted(r.name.rsplit(".", 1)[0] for recs in parsed.fusion.values() for r in recs)
    held = sorted(r.name.rsplit(".", 1)[0] for r in parsed.fusion["test"])
    assert held == [stems[4], stems[9]]  # every fifth by sorted name: indices 4 and 9
    assert len(parsed.fusion["train"]) == 9
    record = parsed.fusion["train"][0]
    assert load_image(record.ir, INFRARED).shape == (20, 24)
    assert load_image(record.vi, VISIBLE).shape == (20, 24, 3)
    # the split depends only on the names: a copy elsewhere splits the same way
    trees.folder_tree(tmp_path / "b", n=11, size=(40, 48))
    again = get_parser("folder")(tmp_path / "b", split="train", name="rs", holdout_every=5)
    assert sorted(r.key for r in again.fusion["test"]) == sorted(r.key for r in parsed.fusion["test"])
    with pytest.raises(ValueError, match="scale"):
        get_parser("folder")(tmp_path / "a", scale=2)


def test_folder_splits_relative_to_root(tmp_path):
    trees.folder_tree(tmp_path / "root" / "train", n=3)
    trees.folder_tree(tmp_path / "root" / "test", n=2)
    parsed = get_parser("folder")(tmp_path / "root", splits={"train": "train", "test": "test"}, name="x")
    assert {k: len(v) for k, v in parsed.fusion.items()} == {"train": 3, "test": 2}


def test_lol_plain_train_layout(tmp_path):
    for name in ("2.png", "5.png"):
        trees.write_image(tmp_path / "lol" / "train" / "low" / name)
        trees.write_image(tmp_path / "lol" / "train" / "high" / name)
    parsed = get_parser("lol")(tmp_path / "lol")
    assert _tasks(parsed.stage1["train"]) == {("ll", VISIBLE): 2, ("pd", VISIBLE): 2}
    assert "test" not in parsed.stage1 and parsed.skipped == []


def test_restoration_set_covers_every_task_with_seeded_variants(tmp_path):
    from data_prep.derived import restoration_set

    base = get_parser("demo")(None, train=2, test=1, height=32, width=40, tasks={"visible": [], "infrared": []})
    parsed = restoration_set(base, variants=2, seed=3)
    train = parsed.stage1["train"]
    counts = _tasks(train)
    assert counts[("pd", VISIBLE)] == 2 and counts[("pd", INFRARED)] == 2
    for task in ("ll", "hz", "oe"):
        assert counts[(task, VISIBLE)] == 4  # 2 scenes x 2 variants
    for task in ("lc", "sr4", "sr8"):
        assert counts[(task, INFRARED)] == 4
    assert _tasks(parsed.stage1["test"])[("ll", VISIBLE)] == 2
    by_key = {r.key: r for r in train}
    first = next(k for k in by_key if k.endswith("_vi_ll_0"))
    a, b = load_image(by_key[first].lq, VISIBLE), load_image(by_key[first[:-1] + "1"].lq, VISIBLE)
    assert a.shape == b.shape and not np.array_equal(a, b)  # variants differ
    again = {r.key: r for r in restoration_set(base, variants=2, seed=3).stage1["train"]}
    assert np.array_equal(load_image(again[first].lq, VISIBLE), a)  # and are seeded
    pd = next(r for r in train if r.task == "pd" and r.modality == INFRARED)
    assert np.array_equal(load_image(pd.lq, INFRARED), load_image(pd.hq, INFRARED))
    with pytest.raises(ValueError, match="variants"):
        restoration_set(base, variants=0)


def test_fingerprints_hash_content_and_relative_names_not_locations(tmp_path):
    import os
    import shutil

    from data_prep.sources.base import files_fingerprint, portable_messages

    root = trees.folder_tree(tmp_path / "a/pairs", n=3)
    copy = tmp_path / "b/c/pairs"
    shutil.copytree(root, copy, copy_function=shutil.copyfile)  # new mtimes
    for p in copy.rglob("*.png"):
        os.utime(p, ns=(1, 1))
    parse = get_parser("folder")
    assert parse(root).fingerprint == parse(copy).fingerprint
    assert files_fingerprint(sorted(root.rglob("*.png"))) == files_fingerprint(sorted(copy.rglob("*.png")))
    (copy / "vi/002.png").rename(copy / "vi/009.png")  # same bytes, other name
    assert files_fingerprint(sorted(root.rglob("*.png"))) != files_fingerprint(sorted(copy.rglob("*.png")))
    data = bytearray((copy / "vi/001.png").read_bytes())
    data[-20] ^= 1  # other bytes, same size and mtime
    (copy / "vi/001.png").write_bytes(bytes(data))
    os.utime(copy / "vi/001.png", ns=(1, 1))
    assert files_fingerprint([copy / "vi/001.png"]) != files_fingerprint([root / "vi/001.png"])
    assert portable_messages([f"{root}/ir/x.png: no vi partner, skipped", "plain"], [root]) == [
        "pairs/ir/x.png: no vi partner, skipped", "plain"]
