"""Resume after a real SIGKILL: ``python -m pipelines.stages.build_data`` on a small simulated tree
(MSRS layout) is killed once a shard of a multi-shard split is finished and before the split's
manifest exists, then rerun. Finished shards must not be rewritten (same inode and mtime), no
half-written file may look like a shard, and the final shards and manifests must be
byte-identical to an uninterrupted (sequential, in-process) build of the same tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from data_prep import simulate
from data_prep.shards import MANIFEST, manifest_shard_paths, write_parsed_split
from lure.paths import REPO_ROOT
from pipelines.flows.build_datasets import parse_dataset, portable_root

FRACTION = 0.02  # MSRS: 22 train + 7 test pairs at 640x480
SAMPLES_PER_SHARD = 3  # train: 8 fusion shards, written one at a time (max_workers 1)


def _params(tmp_path: Path, tree: Path) -> Path:
    data = simulate.flow_config(tree, ["msrs"], samples_per_shard=SAMPLES_PER_SHARD, min_shards=2,
                                task_runner="threads", task_runner_options={"max_workers": 1},
                                degraded_eval={}, derived={})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"profile": "sim", "seed": 0, "profiles": {"sim": {"data": data}}}))
    return path


def _start(params: Path, out: Path, env: dict) -> subprocess.Popen:
    # own session: the SIGKILL also reaches the temporary Prefect server the run starts
    return subprocess.Popen([sys.executable, "-m", "pipelines.stages.build_data", "--params", str(params),
                             "--out", str(out)], cwd=REPO_ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _read_fully(path: Path) -> int:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        for m in members:
            assert len(tar.extractfile(m).read()) == m.size
    return len(members)


def _split_files(split_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(split_dir.iterdir())}


@pytest.mark.slow
def test_build_resumes_after_sigkill(tmp_path):
    tree = tmp_path / "tree"
    simulate.simulate("msrs", FRACTION, tree, seed=0)
    params = _params(tmp_path, tree)
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=str(REPO_ROOT))
    env.pop("PREFECT_API_URL", None)

    # reference: an uninterrupted, sequential build of the same tree in this process (the flow's
    # parse, data_prep.shards' writer; saves a third Prefect start-up of ~20 s on a busy machine)
    reference = tmp_path / "reference"
    data = yaml.safe_load(params.read_text())["profiles"]["sim"]["data"]
    entry = data["datasets"]["msrs"]
    parsed = parse_dataset("msrs", entry, [entry["root"]], 0)
    for split in parsed.splits():
        write_parsed_split(reference, "msrs", split, parsed, data, versions=[{"root": portable_root(entry["root"])}])

    out = tmp_path / "out"
    split_dir = out / "shards/msrs/train"
    results = tmp_path / "prefect/storage"  # Prefect's persisted task results, one per written shard
    proc = _start(params, out, env)
    cached: list[Path] = []
    deadline = time.monotonic() + 240
    try:
        # kill once a train shard is on disk and every shard on disk has its task result recorded: a
        # shard renamed into place but killed before Prefect recorded its result is rewritten (with
        # the same bytes) by the next run, which the inode check below would misread as a failure
        while time.monotonic() < deadline and proc.poll() is None:
            finished = sorted(split_dir.glob("fusion-*.tar")) if split_dir.is_dir() else []
            n_results = len(list(results.glob("write-shard-*"))) if results.is_dir() else 0
            if finished and n_results >= len(list(out.glob("shards/*/*/fusion-*.tar"))):
                cached = finished
                break
            time.sleep(0.02)
    finally:
        _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL, "the build finished before a shard could be observed"
    assert not (split_dir / MANIFEST).exists(), "killed too late: the split's manifest was already written"
    finished = sorted(split_dir.glob("fusion-*.tar"))
    n_planned = len(json.loads((reference / "shards/msrs/train" / MANIFEST).read_text())["fusion"]["shards"])
    assert 1 <= len(finished) < n_planned
    # what a kill leaves: complete shards (every member readable) and at most temporary files
    for path in finished:
        # ir.png, vi.png, json per sample; the paper profile stores MSRS train as pre-cut patches
        per_image = (entry.get("patches") or {}).get("per_image", 1)
        assert _read_fully(path) in (3 * per_image * (SAMPLES_PER_SHARD - 1), 3 * per_image * SAMPLES_PER_SHARD)
    leftovers = [p.name for p in split_dir.iterdir() if p not in finished]
    assert all(name.endswith(".tmp") for name in leftovers), leftovers
    assert cached, "no train shard with a recorded result was observed before the kill"
    stamps = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cached}

    _finish(_start(params, out, env))

    # recorded shards were kept as they were: same inode (an atomic rewrite would replace it) and mtime
    assert {n: ((split_dir / n).stat().st_ino, (split_dir / n).stat().st_mtime_ns) for n in stamps} == stamps
    # every shard the manifest lists reads fully; no stray partial file is left
    for split in ("train", "test"):
        for path in manifest_shard_paths(out / "shards/msrs" / split):
            _read_fully(path)
        assert not [p for p in (out / "shards/msrs" / split).iterdir() if p.name.endswith(".tmp")]
    # byte-identical to the uninterrupted build
    for split in ("train", "test"):
        assert _split_files(out / "shards/msrs" / split) == _split_files(reference / "shards/msrs" / split), split


def test_shard_written_from_a_generator_is_identical_and_atomic(tmp_path):
    """``build_shard`` streams samples into the tar (one sample in memory): same bytes as writing
    the encoded list, and an encoding error half-way leaves no shard and no temporary file."""
    from data_prep import shards
    from data_prep.sources import get_parser

    tree = tmp_path / "tree"
    simulate.simulate("roadscene", 0.02, tree, seed=1)  # 4 pairs, sizes vary
    records = get_parser("roadscene")(simulate.tree_root(tree, "roadscene")).fusion["test"]
    listed = shards.write_shard(tmp_path / "a/fusion-000000.tar", [(r.key, shards.fusion_sample(r)) for r in records])
    streamed = shards.build_shard(tmp_path / "b", "fusion", 0, records)
    assert streamed == listed
    assert (tmp_path / "a/fusion-000000.tar").read_bytes() == (tmp_path / "b/fusion-000000.tar").read_bytes()

    def failing():
        yield records[0].key, shards.fusion_sample(records[0])
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError, match="decoder died"):
        shards.write_shard(tmp_path / "c/fusion-000000.tar", failing())
    assert list((tmp_path / "c").iterdir()) == []
