"""Shard writing (atomic, manifest, skip-if-unchanged) and the loaders (local, http, pipe:)."""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from data_prep import derived, shards
from data_prep.sources import demo as demo_source
from data_prep.sources import get_parser
from lure.data.augment import whole_view
from lure.data.loaders import (
    fusion_loader,
    iter_degraded_pairs,
    iter_fusion_pairs,
    iter_stage1_samples,
    shard_urls,
    stage1_loader,
)
from lure.fileio import sha256_file
from lure.image_io import decode_image
from lure.models.global_correction import image_statistics
from lure.text.vocabulary import INFRARED, VISIBLE
from tests.data_fixtures import trees

CONFIG = {"seed": 0, "samples_per_shard": 16, "min_shards": 2}


@pytest.fixture(scope="module")
def demo_shards(tmp_path_factory) -> Path:
    """A small demo (6 train / 2 test scenes) and its degraded sets, written sequentially."""
    out = tmp_path_factory.mktemp("shards")
    parsed = demo_source.parse(train=6, test=2, seed=1)
    for split in ("train", "test"):
        assert shards.write_parsed_split(out, "demo", split, parsed, CONFIG)["rewritten"]
    degraded = derived.degraded_sets(parsed, "test", ["oe+lc", "sr4"], seed=1)
    for task in degraded.fusion:
        shards.write_parsed_split(out, "demo-degraded", task, degraded, CONFIG)
    return out / "shards"


@pytest.fixture(scope="module")
def http_root(demo_shards):
    handler = functools.partial(QuietHandler, directory=str(demo_shards))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


def test_manifest_counts_and_hashes(demo_shards):
    split = demo_shards / "demo/train"
    manifest = json.loads((split / "manifest.json").read_text())
    assert manifest["stage1"]["count"] == 6 * 8 and manifest["fusion"]["count"] == 6
    assert manifest["stage1"]["per_task"] == {f"{t}/visible": 6 for t in ("pd", "ll", "hz", "oe")} | {
        f"{t}/infrared": 6 for t in ("pd", "lc", "sr4", "sr8")}
    assert len(manifest["stage1"]["shards"]) == 3 and len(manifest["fusion"]["shards"]) == 2  # 48/16; min 2
    for kind in ("stage1", "fusion"):
        for entry in manifest[kind]["shards"]:
            assert sha256_file(split / entry["name"]) == entry["sha256"]
    assert manifest["source_versions"]["parser"] == demo_source.VERSION
    assert manifest["source_versions"]["fingerprint"] == demo_source.parse(train=6, test=2, seed=1).fingerprint
    assert manifest["generation"]["seed"] == 0 and not list(split.glob("*.tmp"))
    assert sorted(p.name for p in split.iterdir()) == ["fusion-000000.tar", "fusion-000001.tar", "manifest.json",
                                                      "stage1-000000.tar", "stage1-000001.tar", "stage1-000002.tar"]


def test_same_inputs_same_bytes_and_nothing_rewritten(demo_shards, tmp_path):
    parsed = demo_source.parse(train=6, test=2, seed=1)
    time.sleep(1.05)  # a second later than the fixture's build: a wall-clock stamp would differ
    assert shards.write_parsed_split(tmp_path, "demo", "test", parsed, CONFIG)["rewritten"]
    ours = json.loads((tmp_path / "shards/demo/test/manifest.json").read_text())
    first = json.loads((demo_shards / "demo/test/manifest.json").read_text())
    assert [e["sha256"] for e in ours["stage1"]["shards"]] == [e["sha256"] for e in first["stage1"]["shards"]]
    # every file, the manifest included, is byte-identical: DVC hashes the folder the same anywhere
    names = sorted(p.name for p in (demo_shards / "demo/test").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "shards/demo/test").iterdir())
    for name in names:
        assert (tmp_path / "shards/demo/test" / name).read_bytes() == (demo_shards / "demo/test" / name).read_bytes()
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "shards/demo/test").iterdir()}
    assert not shards.write_parsed_split(tmp_path, "demo", "test", parsed, CONFIG)["rewritten"]
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "shards/demo/test").iterdir()}
    assert before == after
    # a changed generation parameter rebuilds; fewer shards -> the stale ones are removed
    assert shards.write_parsed_split(tmp_path, "demo", "test", parsed, CONFIG | {"samples_per_shard": 100,
                                                                                   "min_shards": 1})["rewritten"]
    assert sorted(p.name for p in (tmp_path / "shards/demo/test").iterdir()) == [
        "fusion-000000.tar", "manifest.json", "stage1-000000.tar"]


def test_changed_source_file_rebuilds(tmp_path):
    root = trees.folder_tree(tmp_path / "pairs", n=3)
    parse = get_parser("folder")
    assert shards.write_parsed_split(tmp_path, "f", "test", parse(root), CONFIG)["rewritten"]
    assert not shards.write_parsed_split(tmp_path, "f", "test", parse(root), CONFIG)["rewritten"]
    trees.write_image(root / "vi/001.png", size=(40, 48))  # the same bytes again, a new mtime
    os.utime(root / "vi/001.png", ns=(1, 1))
    assert not shards.write_parsed_split(tmp_path, "f", "test", parse(root), CONFIG)["rewritten"]
    trees.write_image(root / "vi/001.png", size=(32, 48))  # other bytes
    os.utime(root / "vi/001.png", ns=(1, 1))
    assert shards.write_parsed_split(tmp_path, "f", "test", parse(root), CONFIG)["rewritten"]
    # a deleted shard is noticed too
    (tmp_path / "shards/f/test/fusion-000000.tar").unlink()
    assert shards.write_parsed_split(tmp_path, "f", "test", parse(root), CONFIG)["rewritten"]


def test_crash_while_writing_leaves_no_shard(tmp_path):
    good = ("a", {"ir.png": b"x", "json": b"{}"})
    broken = ("b", {"ir.png": None})  # fails inside the tar loop, after sample "a" was written
    with pytest.raises(TypeError):
        shards.write_shard(tmp_path / "fusion-000000.tar", [good, broken])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="must not contain"):
        shards.write_shard(tmp_path / "fusion-000000.tar", [("a.b", {"json": b"{}"})])
    assert list(tmp_path.iterdir()) == []


def test_plan_shards():
    assert shards.plan_shards(0, 10) == []
    assert shards.plan_shards(5, 10, 2) == [(0, 2), (2, 5)]
    assert shards.plan_shards(25, 10, 1) == [(0, 8), (8, 17), (17, 25)]
    assert shards.plan_shards(1, 10, 4) == [(0, 1)]


def test_full_size_iterators(demo_shards):
    urls = shard_urls(demo_shards / "demo/test", "fusion")
    pairs = list(iter_fusion_pairs(urls))
    assert [k for k, _, _ in pairs] == ["demo_test_00000", "demo_test_00001"]
    key, ir, vi = pairs[0]
    assert ir.shape == (128, 160) and vi.shape == (128, 160, 3) and ir.dtype == vi.dtype == np.uint8
    expect_ir = demo_source.render_scene(demo_source._scene_seed(1, "test", 0))[0]
    assert np.array_equal(ir, expect_ir)  # lossless round trip
    samples = list(iter_stage1_samples(demo_shards / "demo/test"))
    assert Counter(s["task"] for s in samples) == Counter({t: 2 for t in ("ll", "hz", "oe", "lc", "sr4", "sr8")}
                                                          | {"pd": 4})
    for s in samples:
        assert s["lq"].shape == s["hq"].shape == ((128, 160, 3) if s["modality"] == VISIBLE else (128, 160))
        assert (s["task"] == "pd") == np.array_equal(s["lq"], s["hq"])
    deg = list(iter_degraded_pairs(demo_shards / "demo-degraded/oe+lc"))
    assert len(deg) == 2 and deg[0]["vi_task"] == "oe" and deg[0]["ir_task"] == "lc"
    assert np.array_equal(deg[0]["ir_clean"], ir) and not np.array_equal(deg[0]["ir"], ir)
    assert deg[0]["ir"].std() < ir.std()


def test_stage1_loader_batches_and_alignment(demo_shards):
    loader = stage1_loader(shard_urls(demo_shards / "demo/train", "stage1"), crop=64, batch_size=8, workers=0,
                           task_weights=None, seed=0, epoch_length=4)
    batches = list(loader)
    assert len(batches) == 4 == len(loader)
    b = batches[0]
    assert b["lq"].shape == b["hq"].shape == (8, 3, 64, 64) and b["lq"].dtype == torch.float32
    assert 0.0 <= float(b["lq"].min()) and float(b["lq"].max()) <= 1.0
    assert b["modality"].dtype == torch.long and b["modality"].shape == (8,)
    assert len(b["task"]) == len(b["key"]) == 8
    for batch in batches:
        for i, task in enumerate(batch["task"]):
            if batch["modality"][i] == INFRARED:  # infrared repeated to 3 channels
                assert torch.equal(batch["hq"][i, 0], batch["hq"][i, 2])
            if task == "pd":  # identical images stay identical: crop and flips are shared
                assert torch.equal(batch["lq"][i], batch["hq"][i])


def test_stage1_task_weights(demo_shards):
    urls = shard_urls(demo_shards / "demo/train", "stage1")
    only = stage1_loader(urls, 32, 16, 0, {"lc": 1.0, "ll": 0.0}, seed=3, epoch_length=2)
    assert {t for b in only for t in b["task"]} == {"lc"}
    mixed = stage1_loader(urls, 32, 50, 0, {"ll": 3.0, "sr8": 1.0}, seed=3, epoch_length=4)
    tasks = Counter(t for b in mixed for t in b["task"])
    assert set(tasks) == {"ll", "sr8"}
    assert 0.62 < tasks["ll"] / 200 < 0.88  # 0.75 expected


def test_whole_views_are_the_downscaled_image(demo_shards):
    """whole_view = 1: a listed task's crop is a window of the whole image area-downscaled to the
    crop size on its shorter side (the same window of lq and hq); other tasks keep their crops."""
    urls = shard_urls(demo_shards / "demo/train", "stage1")
    kwargs = dict(crop=32, batch_size=6, workers=0, task_weights={"lc": 1.0, "sr4": 1.0}, seed=4, epoch_length=3)
    plain = list(stage1_loader(urls, **kwargs))
    views = list(stage1_loader(urls, **kwargs, whole_view=1.0, whole_view_tasks=("lc",)))
    full = {s["key"]: s for s in iter_stage1_samples(urls)}
    seen = Counter()
    for p, v in zip(plain, views):
        assert p["key"] == v["key"] and p["task"] == v["task"]
        for i, (key, task) in enumerate(zip(v["key"], v["task"])):
            if task == "sr4":
                assert torch.equal(p["lq"][i], v["lq"][i]) and torch.equal(p["hq"][i], v["hq"][i])
                continue
            seen[task] += 1
            small = {name: whole_view(full[key][name], 32) for name in ("lq", "hq")}
            assert small["hq"].shape == (32, 40)  # 128 x 160 -> shorter side 32, aspect kept
            got = {name: (v[name][i, 0].numpy() * 255).round().astype(np.uint8) for name in ("lq", "hq")}
            matches = [
                (x, flips) for x in range(9) for flips in ((), (0,), (1,), (0, 1))
                if all(np.array_equal(np.flip(small[n][:, x:x + 32], flips), got[n]) for n in ("lq", "hq"))
            ]
            assert matches, f"{key}: the whole-view crop is no window of the downscaled image"
    assert seen["lc"] >= 3
    with pytest.raises(ValueError, match="whole_view must be a probability"):
        stage1_loader(urls, **kwargs, whole_view=1.5)


def test_whole_image_statistics_ride_with_the_crops(demo_shards):
    """with_statistics: each sample carries the statistics of its whole images (not of the crop),
    for stage-1 triplets (lq and hq, also in whole views) and fusion pairs; the crops themselves
    are the batches without statistics."""
    from lure.models.global_correction import STATS_PER_CHANNEL, array_statistics

    urls = shard_urls(demo_shards / "demo/train", "stage1")
    kwargs = dict(crop=32, batch_size=4, workers=0, task_weights={"lc": 1.0, "hz": 1.0}, seed=2, epoch_length=2)
    plain = list(stage1_loader(urls, **kwargs))
    with_stats = list(stage1_loader(urls, **kwargs, whole_view=0.5, whole_view_tasks=("lc",), with_statistics=True))
    full = {s["key"]: s for s in iter_stage1_samples(urls)}
    assert "lq_stats" not in plain[0]
    for batch in with_stats:
        assert batch["lq_stats"].shape == (4, 3, STATS_PER_CHANNEL)
        for i, key in enumerate(batch["key"]):
            for name in ("lq", "hq"):
                assert torch.equal(batch[f"{name}_stats"][i], array_statistics(full[key][name]))
            crop = batch["lq"][i : i + 1]
            assert not torch.allclose(batch["lq_stats"][i], image_statistics(crop)[0], atol=1e-3)
    for p, s in zip(plain, with_stats, strict=True):  # the statistics move no crop
        assert p["key"] == s["key"]
    split = demo_shards / "demo/train"
    pairs = {key: (ir, vi) for key, ir, vi in iter_fusion_pairs(split)}
    plain = list(fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1))
    batches = list(fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1, with_statistics=True))
    for p, batch in zip(plain, batches, strict=True):
        assert torch.equal(p["vi"], batch["vi"]) and torch.equal(p["ir"], batch["ir"])
        for i, key in enumerate(batch["key"]):
            ir, vi = pairs[key]
            assert torch.equal(batch["ir_stats"][i], array_statistics(ir))
            assert torch.equal(batch["vi_stats"][i], array_statistics(vi))
            assert torch.equal(batch["ir_stats"][i, 0], batch["ir_stats"][i, 2])  # grey infrared
    # only the images the model corrects carry statistics (the real profile corrects infrared)
    infrared_only = next(iter(fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1,
                                            with_statistics=("infrared",))))
    assert "vi_stats" not in infrared_only and torch.equal(infrared_only["ir_stats"], batches[0]["ir_stats"])
    with pytest.raises(ValueError, match="thermal"):
        fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1, with_statistics=("thermal",))


def test_whole_view_keeps_the_aspect_and_small_images():
    image = (np.arange(60 * 100) % 251).reshape(60, 100).astype(np.uint8)
    assert whole_view(image, 30).shape == (30, 50)
    assert whole_view(np.dstack([image] * 3), 30).shape == (30, 50, 3)
    assert whole_view(image, 60) is image and whole_view(image, 80) is image
    flat = np.full((64, 64), 77, np.uint8)
    assert np.array_equal(whole_view(flat, 16), np.full((16, 16), 77, np.uint8))  # area mean


def test_loaders_with_workers(demo_shards):
    """One worker process: the in-process batches, one pass over the fusion pairs per epoch. Three
    workers over 2 fusion shards: the shards split into sample slices (with a warning), an endless
    fusion stream of full batches."""
    urls = shard_urls(demo_shards / "demo/train")
    s1 = list(stage1_loader(urls, 48, 4, 2, {"pd": 1, "hz": 1}, seed=0, epoch_length=3))
    assert len(s1) == 3 and all(b["lq"].shape == (4, 3, 48, 48) for b in s1)
    fl = fusion_loader(demo_shards / "demo/train", crop=48, batch_size=4, workers=1, seed=0)
    keys = [k for b in fl for k in b["key"]]
    assert sorted(keys) == [f"demo_train_{i:05d}" for i in range(6)]  # one pass, each pair once
    b = next(iter(fl))
    assert b["ir"].shape[1:] == b["vi"].shape[1:] == (3, 48, 48) and b["ir"].shape[0] == b["vi"].shape[0] <= 4
    assert torch.equal(b["ir"][:, 0], b["ir"][:, 1])
    assert sorted(k for b in fl for k in b["key"]) == sorted(keys)  # a second epoch works
    in_process = fusion_loader(demo_shards / "demo/train", crop=48, batch_size=4, workers=0, seed=0)
    for x, y in zip(fl.iterate(2), in_process.iterate(2), strict=True):
        assert x["key"] == y["key"] and torch.equal(x["ir"], y["ir"]) and torch.equal(x["vi"], y["vi"])
    with pytest.warns(UserWarning, match=r"2 shard\(s\) for 3 loader parts"):
        split = fusion_loader(demo_shards / "demo/train", crop=48, batch_size=4, workers=3, seed=0)
    batches = list(itertools.islice(split.iterate(1), 5))  # endless: more than one pass's 6 pairs
    assert all(len(b["key"]) == 4 and b["ir"].shape == (4, 3, 48, 48) for b in batches)
    assert {k for b in batches for k in b["key"]} <= set(keys)


def test_degraded_fusion_batches(demo_shards):
    """Degradation-aware stage 2: degraded pairs carry their tasks and clean crops, the draws are a
    function of the seed (the same in process and in one worker), and degraded_fraction 0 is the
    plain loader."""
    from lure.data.loaders import DEGRADED_PAIR_TASKS

    split = demo_shards / "demo/train"
    plain = list(fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1))
    assert "vi_task" not in plain[0]
    all_degraded = [list(fusion_loader(split, crop=32, batch_size=3, workers=w, seed=1, degraded_fraction=1.0))
                    for w in (0, 1)]
    for a, b in zip(*all_degraded, strict=True):
        assert a["key"] == b["key"] and a["vi_task"] == b["vi_task"] and torch.equal(a["ir"], b["ir"])
    for batch, clean in zip(all_degraded[0], plain, strict=True):
        assert torch.equal(batch["vi_clean"], clean["vi"]) and torch.equal(batch["ir_clean"], clean["ir"])
        for i, tasks in enumerate(zip(batch["vi_task"], batch["ir_task"], strict=True)):
            assert tasks in DEGRADED_PAIR_TASKS
            if tasks[0] != "pd":
                assert not torch.equal(batch["vi"][i], batch["vi_clean"][i])
            if tasks[1] != "pd":
                assert not torch.equal(batch["ir"][i], batch["ir_clean"][i])
                assert torch.equal(batch["ir"][i, 0], batch["ir"][i, 2])  # infrared stays grey
    half = [t for b in fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1, degraded_fraction=0.5)
            for t in zip(b["vi_task"], b["ir_task"], strict=True)]
    assert len(half) == 6
    with pytest.raises(ValueError, match="degraded_fraction"):
        fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1, degraded_fraction=1.5)


def test_gamma_jittered_fusion_batches(demo_shards):
    """stage2.gamma_jitter: a jittered source is the stored one through 255 (x/255)^g, with the same
    crop and flips; the draws follow the seed (the same in process and in one worker); 0 is the
    plain loader."""
    split = demo_shards / "demo/train"
    plain = list(fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1))
    squared = list(fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1, gamma_jitter=1.0,
                                 gamma_range=(2.0, 2.0)))
    for a, b in zip(plain, squared, strict=True):
        assert a["key"] == b["key"]
        for name in ("ir", "vi"):
            expected = torch.round(255.0 * (a[name].double() ** 2)).float() / 255.0
            assert torch.equal(b[name], expected), name
    unchanged = list(fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1, gamma_jitter=0.0,
                                   gamma_range=(0.25, 4.0)))
    assert all(torch.equal(a["vi"], b["vi"]) and torch.equal(a["ir"], b["ir"]) for a, b in zip(plain, unchanged, strict=True))
    runs = [list(fusion_loader(split, crop=32, batch_size=3, workers=w, seed=1, gamma_jitter=0.5,
                               gamma_range=(0.5, 2.0), with_statistics=True)) for w in (0, 1)]
    changed = 0
    for a, b, c in zip(*runs, plain, strict=True):
        assert torch.equal(a["ir"], b["ir"]) and torch.equal(a["vi"], b["vi"]) and torch.equal(a["ir_stats"], b["ir_stats"])
        changed += sum(not torch.equal(x, y) for x, y in zip(a["vi"], c["vi"], strict=True))
    assert 0 < changed < sum(len(c["key"]) for c in plain)  # some, not all, visible crops jittered
    with pytest.raises(ValueError, match="gamma_jitter"):
        fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1, gamma_jitter=2.0)
    with pytest.raises(ValueError, match="gamma_range"):
        fusion_loader(split, crop=32, batch_size=3, workers=0, seed=1, gamma_jitter=0.5, gamma_range=(2.0, 1.0))


@pytest.mark.slow
def test_workers_survive_an_earlier_in_process_flow(demo_shards):
    """Prefect 3.8 leaves a thread-exit hook behind that kills forked workers with exit code 1
    once any flow ran in the process (as in a notebook: build the data, then train)."""
    from prefect import flow

    @flow(name="lure-test-noop")
    def noop() -> int:
        return 1

    assert noop() == 1
    fl = fusion_loader(demo_shards / "demo/train", crop=32, batch_size=2, workers=1, seed=0)
    for _ in range(2):
        assert sorted(k for b in fl for k in b["key"]) == [f"demo_train_{i:05d}" for i in range(6)]


def test_fusion_crops_are_aligned(tmp_path):
    """With ir = grey(vi), every cropped/flipped ir must equal the grey of its vi crop."""
    rng = np.random.default_rng(0)
    from PIL import Image

    for i in range(4):
        vi = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
        (tmp_path / "pairs/vi").mkdir(parents=True, exist_ok=True)
        (tmp_path / "pairs/ir").mkdir(parents=True, exist_ok=True)
        Image.fromarray(vi).save(tmp_path / f"pairs/vi/{i}.png")
        Image.fromarray(vi).convert("L").save(tmp_path / f"pairs/ir/{i}.png")
    shards.write_parsed_split(tmp_path, "al", "train", get_parser("folder")(tmp_path / "pairs", split="train"), CONFIG)
    for batch in fusion_loader(shard_urls(tmp_path / "shards/al/train"), 32, 2, 0, seed=5):
        for ir, vi in zip(batch["ir"], batch["vi"], strict=True):
            grey = (vi * 255).permute(1, 2, 0).numpy().round().astype(np.uint8)
            expect = np.asarray(Image.fromarray(grey).convert("L"), dtype=float)
            assert np.abs(ir[0].numpy() * 255 - expect).max() <= 1.0


def test_http_and_pipe_urls(demo_shards, http_root):
    local = list(iter_fusion_pairs(shard_urls(demo_shards / "demo/train", "fusion")))
    remote_urls = shard_urls(f"{http_root}/demo/train/manifest.json", "fusion")
    assert all(u.startswith("http://127.0.0.1") for u in remote_urls)
    remote = list(iter_fusion_pairs(remote_urls))
    piped = list(iter_fusion_pairs([f"pipe:cat {u}" for u in shard_urls(demo_shards / "demo/train", "fusion")]))
    for other in (remote, piped):
        assert [k for k, _, _ in other] == [k for k, _, _ in local]
        assert all(np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2]) for a, b in zip(local, other, strict=True))
    batch = next(iter(stage1_loader(shard_urls(f"{http_root}/demo/train", "stage1"), 32, 4, 0, None, 0, 1)))
    assert batch["lq"].shape == (4, 3, 32, 32)


def test_missing_manifest_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the data set first"):
        shard_urls(tmp_path)


def test_paired_flips_are_independent_and_shared_by_both_images():
    """Both images get the same window and flips; horizontal and vertical flips are drawn
    independently (all four combinations occur), and a seed fixes them."""
    from collections import Counter

    from lure.data.augment import apply_pair, paired_crop_flip

    image = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    transform = paired_crop_flip(4, seed=0)
    seen: Counter = Counter()
    for seed in range(64):
        transform.set_random_seed(seed)
        first, second = apply_pair(transform, image, image.copy())
        assert np.array_equal(first, second)
        seen[(bool(first[0, 0] > first[0, 1]), bool(first[0, 0] > first[1, 0]))] += 1
        transform.set_random_seed(seed)
        assert np.array_equal(apply_pair(transform, image, image.copy())[0], first)
    assert len(seen) == 4 and min(seen.values()) >= 6, seen


def test_pre_cut_patches_store_aligned_windows_and_feed_the_loader(tmp_path):
    """A data set with ``patches: {size, per_image}`` is stored as that many aligned, seeded windows
    per pair (keys ``<key>_p<i>``), which the training loader crops like whole images."""
    from data_prep.shards import PatchSpec, fusion_sample, write_parsed_split
    from data_prep.sources import get_parser

    root = trees.folder_tree(tmp_path / "pairs", n=3)
    parsed = get_parser("folder")(str(root), name="pairs", split="train")
    config = {"seed": 0, "samples_per_shard": 4, "min_shards": 1,
              "datasets": {"pairs": {"source": "folder", "patches": {"size": 16, "per_image": 3}}}}
    counts = write_parsed_split(tmp_path / "out", "pairs", "train", parsed, config)
    assert counts["fusion"] == 9
    split = tmp_path / "out" / "shards" / "pairs" / "train"
    samples = list(iter_fusion_pairs(split))
    assert [key for key, _, _ in samples][:3] == [f"{parsed.fusion['train'][0].key}_p{i}" for i in range(3)]
    record = parsed.fusion["train"][0]
    whole = fusion_sample(record)
    full_ir = decode_image(whole["ir.png"])
    for i, (_key, ir, vi) in enumerate(samples[:3]):
        top, left, h, w = PatchSpec(16, 3).windows(*full_ir.shape[:2], record.key)[i]
        assert ir.shape == (h, w) and vi.shape == (h, w, 3)
        assert np.array_equal(ir, full_ir[top:top + h, left:left + w])  # aligned with the whole image
    again = write_parsed_split(tmp_path / "again", "pairs", "train", parsed, config)
    assert again["fusion"] == 9
    first = sorted(p.read_bytes() for p in split.glob("*.tar"))
    assert first == sorted(p.read_bytes() for p in (tmp_path / "again/shards/pairs/train").glob("*.tar"))
    batch = next(iter(fusion_loader(shard_urls(split), crop=8, batch_size=4, workers=0, seed=0)))
    assert batch["ir"].shape == (4, 3, 8, 8)
    # evaluation splits stay whole unless patches.splits names them
    test = get_parser("folder")(str(root), name="pairs", split="test")
    assert write_parsed_split(tmp_path / "out", "pairs", "test", test, config)["fusion"] == 3
    assert next(iter_fusion_pairs(tmp_path / "out/shards/pairs/test"))[1].shape == (40, 48)
