"""Training shards split by rank and by loader worker (``P = world_size * max(1, workers)`` parts):
within a round over the shards the parts read disjoint shards (part ``k`` the ``[k::P]`` of the
round's permutation drawn from ``(seed, epoch)``), or disjoint sample slices of fewer shards than
parts, and a split stream restarts exactly at any batch.

Run as ``python -m torch.distributed.run --nproc_per_node=2 -m tests.test_loader_split SPLIT OUT``
this module is the per-rank program of :func:`test_two_gloo_processes_read_disjoint_samples`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from lure.data.loaders import (
    ShardLoader,
    fusion_loader,
    iter_fusion_pairs,
    iter_stage1_samples,
    shard_urls,
    stage1_loader,
)
from tests.model_helpers import write_demo_shards

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory) -> Path:
    """The demo's 8 training scenes: 32 stage-1 shards of 2 triplets, 4 fusion shards of 2 pairs."""
    return write_demo_shards(tmp_path_factory.mktemp("split"), samples_per_shard=2, min_shards=2) / "shards/demo/train"


@pytest.fixture(scope="module")
def many_pairs(tmp_path_factory) -> dict[str, Path]:
    """384 small demo scenes (one visible ``pd`` triplet each) as 24 shards of 16 per kind
    (``"split"``) and as one shard per kind (``"one"``): a part's share of a round exceeds the
    fusion loader's 64-pair shuffle buffer, so its first batches come from the first round."""
    from data_prep.shards import write_parsed_split
    from data_prep.sources import get_parser

    root = tmp_path_factory.mktemp("pairs")
    parsed = get_parser("demo")(None, train=384, test=0, height=24, width=32, tasks={"visible": ["pd"], "infrared": []})
    write_parsed_split(root, "split", "train", parsed, {"samples_per_shard": 16, "min_shards": 2})
    write_parsed_split(root, "one", "train", parsed, {"samples_per_shard": 384, "min_shards": 1})
    return {name: root / "shards" / name / "train" for name in ("split", "one")}


def _shard_keys(urls: list[str], kind: str) -> dict[str, list[str]]:
    """The keys of each shard, in shard order."""
    if kind == "stage1":
        return {url: [s["key"] for s in iter_stage1_samples([url])] for url in urls}
    return {url: [key for key, _, _ in iter_fusion_pairs([url])] for url in urls}


def _keys_per_part(loader: ShardLoader, rank: int, batches: int) -> dict[int, list[str]]:
    """The keys of the first ``batches`` batches of epoch 1, by part (batch ``g`` is logical worker
    ``g % nw``'s)."""
    nw = max(1, loader.workers)
    parts: dict[int, list[str]] = {}
    for g, batch in enumerate(islice(loader.iterate(1), batches)):
        parts.setdefault(rank * nw + g % nw, []).extend(batch["key"])
    return parts


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x["key"] == y["key"] and all(torch.equal(x[k], y[k]) for k in x if isinstance(x[k], torch.Tensor))
        for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(("kind", "workers"), [("stage1", 0), ("stage1", 2), ("fusion", 0), ("fusion", 2)])
def test_ranks_and_workers_read_disjoint_shards_within_a_round(small_shards, many_pairs, kind, workers):
    """Two ranks (and two workers each): every part's first samples come from its own shards, the
    ``[k::P]`` of the round's permutation, and no two parts share a shard or a sample."""
    split = small_shards if kind == "stage1" else many_pairs["split"]
    urls = shard_urls(split, kind)
    shard_of = {key: url for url, keys in _shard_keys(urls, kind).items() for key in keys}
    parts = 2 * max(1, workers)
    order = np.random.default_rng([7, 1]).permutation(len(urls))  # seed 7, epoch 1: the same on every rank
    seen: dict[int, list[str]] = {}
    for rank in (0, 1):
        if kind == "stage1":  # natural frequencies: the k-th sample is the k-th read (no buffer to fill)
            loader = stage1_loader(urls, 16, 4, workers, None, seed=7, rank=rank, world_size=2)
        else:
            loader = fusion_loader(urls, 16, 4, workers, seed=7, rank=rank, world_size=2)
        seen |= _keys_per_part(loader, rank, batches=6)
    assert sorted(seen) == list(range(parts))
    for k, keys in seen.items():
        assert len(keys) == len(set(keys)) == 24 // max(1, workers)
        assert {shard_of[key] for key in keys} <= {urls[i] for i in order[k::parts]}, f"part {k} read another's shard"
    every = [key for keys in seen.values() for key in keys]
    assert len(every) == len(set(every)) == 48


def test_split_streams_resume_exactly(small_shards):
    """Rank 1 of 2 with two workers (4 parts): ``iterate(epoch, k)`` is batches ``k..`` of
    ``iterate(epoch)``, keys and tensors, for stage 1 and for the (now endless) fusion stream."""
    urls = shard_urls(small_shards, "stage1")
    stage1 = stage1_loader(urls, 16, 3, 2, {"ll": 1.0, "lc": 2.0, "pd": 1.0}, seed=5, epoch_length=6,
                           with_statistics=True, rank=1, world_size=2)
    batches = list(stage1.iterate(2))
    assert len(batches) == 6
    assert _same(batches[3:], list(stage1.iterate(2, 3))) and _same(batches[4:], list(stage1.iterate(2, 4)))
    fusion = fusion_loader(small_shards, 16, 3, 2, seed=5, degraded_fraction=0.5, gamma_jitter=0.5,
                           rank=1, world_size=2)
    batches = list(islice(fusion.iterate(2), 8))  # endless: each part reads one 2-pair shard per round
    assert all(len(b["key"]) == 3 for b in batches)
    assert _same(batches[3:], list(islice(fusion.iterate(2, 3), 5)))
    assert _same(batches[6:], list(islice(fusion.iterate(2, 6), 2)))
    assert not _same(batches[:2], list(islice(fusion.iterate(3), 2)))  # another epoch, another order


def test_fewer_shards_than_parts_split_shards_into_sample_slices(many_pairs):
    """One shard for 4 parts: a warning, and part ``k`` reads one of 4 interleaved sample slices
    (sample indices ``j mod 4``), a different one for each part; likewise 2 slices for 2 stage-1 parts."""
    for kind, workers in (("fusion", 2), ("stage1", 0)):
        urls = shard_urls(many_pairs["one"], kind)
        parts = 2 * max(1, workers)
        index = {key: i for i, key in enumerate(_shard_keys(urls, kind)[urls[0]])}
        seen: dict[int, list[str]] = {}
        for rank in (0, 1):
            with pytest.warns(UserWarning, match=rf"1 shard\(s\) for {parts} loader parts.*min_shards >= {parts}"):
                if kind == "fusion":
                    loader = fusion_loader(urls, 16, 4, workers, seed=3, rank=rank, world_size=2)
                else:
                    loader = stage1_loader(urls, 16, 4, workers, None, seed=3, rank=rank, world_size=2)
            seen |= _keys_per_part(loader, rank, batches=4)
        every = [key for keys in seen.values() for key in keys]
        assert len(every) == len(set(every)) == 32
        slices = [{index[key] % parts for key in seen[k]} for k in range(parts)]
        assert all(len(s) == 1 for s in slices) and len(set.union(*slices)) == parts, slices


def test_rank_outside_world_size_is_refused(small_shards):
    for rank, world_size in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="rank must be in"):
            fusion_loader(small_shards, 16, 2, 0, seed=0, rank=rank, world_size=world_size)
        with pytest.raises(ValueError, match="rank must be in"):
            stage1_loader(small_shards, 16, 2, 0, None, seed=0, rank=rank, world_size=world_size)


def test_two_gloo_processes_read_disjoint_samples(small_shards, tmp_path):
    """torchrun, 2 CPU processes: each builds its loader from ``RANK``/``WORLD_SIZE``; the keys of
    their first batches, gathered on rank 0, are disjoint."""
    out = tmp_path / "keys.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tests.test_loader_split", str(small_shards), str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    gathered = json.loads(out.read_text())
    assert len(gathered) == 2 and all(len(keys) == 16 for keys in gathered)
    assert not set(gathered[0]) & set(gathered[1])


def _rank_main(split: str, out: str) -> None:
    """One rank of :func:`test_two_gloo_processes_read_disjoint_samples`."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    loader = stage1_loader(shard_urls(split, "stage1"), 16, 4, 0, None, seed=11, epoch_length=4,
                           rank=rank, world_size=world_size)
    keys = [key for batch in loader for key in batch["key"]]
    gathered: list = [None] * world_size
    dist.all_gather_object(gathered, keys)
    if rank == 0:
        assert not set(gathered[0]) & set(gathered[1]), "ranks read the same samples"
        Path(out).write_text(json.dumps(gathered))
    dist.destroy_process_group()


if __name__ == "__main__":
    _rank_main(*sys.argv[1:3])
