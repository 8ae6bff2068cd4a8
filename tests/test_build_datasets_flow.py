"""The ``build-datasets`` flow: in-process (as DVC runs it) on the demo and the shared real data,
a corrupted download that must leave no shard, a manual-download stop, and a served deployment
run through a local Prefect server on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from data_prep.download import ChecksumError, ManualDownloadRequired
from lure.data.loaders import iter_degraded_pairs, iter_fusion_pairs, shard_urls
from lure.paths import REPO_ROOT
from pipelines.flows.build_datasets import build_datasets
from pipelines.flows.task_runners import make_task_runner
from tests.data_fixtures import trees

SMALL_DEMO = {"source": "demo", "train": 4, "test": 2}


def _tars(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tar")) if root.exists() else []


@pytest.mark.slow
def test_flow_builds_demo_and_shared_folders(tmp_path, shared_data):
    config = {
        "seed": 0, "samples_per_shard": 64, "min_shards": 2,
        "datasets": {
            "demo": SMALL_DEMO,
            "roadscene": {"source": "folder", "root": "@shared/roadscene", "split": "test"},
            "llvip": {"source": "folder", "splits": {"train": str(shared_data / "llvip/train"),
                                                     "test": str(shared_data / "llvip/test")}},
            "msrs": {"source": "folder", "root": "@shared/msrs", "split": "test"},
        },
        "degraded_eval": {"datasets": ["demo"], "split": "test", "tasks": ["ll+lc", "sr8"]},
    }
    summary = build_datasets(config, out_dir=str(tmp_path))
    assert summary["demo"] == {"train": {"stage1": 32, "fusion": 4}, "test": {"stage1": 16, "fusion": 2}}
    assert summary["roadscene"] == {"test": {"fusion": 221}}
    assert summary["llvip"] == {"train": {"fusion": 32}, "test": {"fusion": 12}}
    assert summary["msrs"] == {"test": {"fusion": 5}}
    assert summary["demo-degraded"] == {"ll+lc": {"fusion": 2}, "sr8": {"fusion": 2}}
    shards = tmp_path / "shards"
    assert json.loads((shards / "summary.json").read_text()) == summary
    assert len(list(iter_fusion_pairs(shard_urls(shards / "roadscene/test")))) == 221
    key, ir, vi = next(iter_fusion_pairs(shards / "llvip/test"))
    assert ir.shape == (1024, 1280) and vi.shape == (1024, 1280, 3)
    deg = next(iter_degraded_pairs(shards / "demo-degraded/ll+lc"))
    assert (deg["vi_task"], deg["ir_task"]) == ("ll", "lc")
    # unchanged inputs: nothing rewritten
    before = {p: p.stat().st_mtime_ns for p in shards.rglob("*") if p.is_file() and p.name != "summary.json"}
    assert build_datasets(config, out_dir=str(tmp_path)) == summary
    after = {p: p.stat().st_mtime_ns for p in shards.rglob("*") if p.is_file() and p.name != "summary.json"}
    assert before == after


def _portable_config(root: Path) -> dict:
    """A folder data set (with an unpaired file, so ``skipped`` is recorded), a derived set and the
    degraded sets of that folder, plus a small demo."""
    return {
        "seed": 0, "samples_per_shard": 4, "min_shards": 2,
        "datasets": {"pairs": {"source": "folder", "root": str(root), "split": "train", "holdout_every": 3},
                     "demo": SMALL_DEMO | {"train": 1, "test": 1}},
        "derived": {"pairs-sr": {"kind": "super_resolution", "from": "pairs", "factors": [4]}},
        "degraded_eval": {"datasets": ["pairs"], "split": "test", "tasks": ["ll+lc"]},
    }


def _tree_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _copy_with_new_mtimes(src: Path, dst: Path) -> None:
    """``cp -r`` without ``-p``: same bytes, new mtimes (set a day later to be sure)."""
    import shutil

    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for p in dst.rglob("*"):
        if p.is_file():
            st = p.stat()
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 86_400 * 10**9))


def test_same_pairs_anywhere_give_identical_shards_and_manifests(tmp_path):
    """The same source pairs at two locations, with different mtimes, built into two output folders:
    byte-identical shards and manifests (so DVC hashes data/shards alike in every clone), and no
    location in any manifest."""
    first = trees.folder_tree(tmp_path / "here/pairs", n=7)
    (first / "ir/lonely.png").write_bytes((first / "ir/000.png").read_bytes())  # no visible partner
    second = tmp_path / "elsewhere/deeper/pairs"
    _copy_with_new_mtimes(first, second)
    out_a, out_b = tmp_path / "out-a", tmp_path / "elsewhere/out-b"
    summary = build_datasets(_portable_config(first), out_dir=str(out_a))
    assert build_datasets(_portable_config(second), out_dir=str(out_b)) == summary
    assert summary["pairs"] == {"train": {"fusion": 5}, "test": {"fusion": 2}}
    files_a, files_b = _tree_files(out_a / "shards"), _tree_files(out_b / "shards")
    assert sorted(files_a) == sorted(files_b) and any(n.endswith("manifest.json") for n in files_a)
    for name in files_a:
        assert files_a[name] == files_b[name], name
    for name, data in (files_a | {f"b/{k}": v for k, v in files_b.items()}).items():
        if name.endswith("manifest.json"):
            text = data.decode()
            for location in (tmp_path, first, second, out_a, out_b, Path.cwd()):
                assert str(location) not in text, (name, location)
    manifest = json.loads(files_a["pairs/test/manifest.json"])
    assert manifest["source_versions"]["sources"] == [{"root": "pairs"}]
    assert manifest["skipped"]["examples"] == ["pairs/ir/lonely.png: no vi partner, skipped"]
    assert len(manifest["source_versions"]["fingerprint"]) == 64


def test_changed_source_image_content_rebuilds_its_split(tmp_path):
    """Same size, same mtime, other bytes: the content hash notices and the split is rebuilt; the
    other data sets are left untouched."""
    import numpy as np
    from PIL import Image

    root = trees.folder_tree(tmp_path / "pairs", n=4)
    config = _portable_config(root) | {"derived": {}, "degraded_eval": {}}
    out = tmp_path / "out"
    build_datasets(config, out_dir=str(out))
    shards = out / "shards"

    def stamps() -> dict[str, int]:
        return {p.relative_to(shards).as_posix(): p.stat().st_mtime_ns for p in shards.rglob("*")
                if p.is_file() and p.name != "summary.json"}

    before = stamps()
    build_datasets(config, out_dir=str(out))
    assert stamps() == before  # unchanged: nothing rewritten
    target = root / "vi/001.png"
    st = target.stat()
    image = np.asarray(Image.open(target)).copy()
    image[0, 0] ^= 0xFF
    Image.fromarray(image).save(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime: only the bytes changed
    old_manifest = json.loads((shards / "pairs/train/manifest.json").read_text())
    build_datasets(config, out_dir=str(out))
    after = stamps()
    assert after["pairs/train/manifest.json"] != before["pairs/train/manifest.json"]
    new_manifest = json.loads((shards / "pairs/train/manifest.json").read_text())
    assert new_manifest["input_hash"] != old_manifest["input_hash"]
    assert [e["sha256"] for e in new_manifest["fusion"]["shards"]] != [
        e["sha256"] for e in old_manifest["fusion"]["shards"]]
    assert {k: v for k, v in after.items() if k.startswith("demo/")} == {
        k: v for k, v in before.items() if k.startswith("demo/")}


def _registry(tmp_path: Path, url: str, sha: str | None, manual: bool = False) -> Path:
    path = tmp_path / "registry.yaml"
    where = "manual: true, page: 'https://example.org/fx'" if manual else f"url: '{url}'"
    path.write_text(f"sources:\n  fx: {{{where}, filename: fx.zip, sha256: {sha or 'null'}, archive: zip,"
                    " layout: folder, root: pairs}\n")
    return path


def _fixture_zip(tmp_path: Path) -> bytes:
    trees.folder_tree(tmp_path / "src/pairs", n=3)
    archive = tmp_path / "fx.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((tmp_path / "src").rglob("*.png")):
            zf.write(p, p.relative_to(tmp_path / "src"))
    return archive.read_bytes()


def test_corrupted_download_leaves_no_shard(tmp_path):
    import hashlib
    import http.server
    import threading

    good = _fixture_zip(tmp_path)
    corrupted = good[: len(good) // 2] + bytes(len(good) - len(good) // 2)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(corrupted)))
            self.end_headers()
            self.wfile.write(corrupted)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/fx.zip"
        config = {"registry": str(_registry(tmp_path, url, hashlib.sha256(good).hexdigest())),
                  "datasets": {"fx": {"source": "folder", "registry": "fx"}}}
        out = tmp_path / "out"
        with pytest.raises(ChecksumError, match="does not match"):
            build_datasets(config, out_dir=str(out))
        assert _tars(out) == [] and not (out / "downloads/fx.zip").exists()
        assert not list((out / "downloads").glob("*.part"))
    finally:
        server.shutdown()
        server.server_close()


def test_manual_download_stops_with_one_message_then_builds(tmp_path):
    data = _fixture_zip(tmp_path)
    config = {"registry": str(_registry(tmp_path, "", None, manual=True)),
              "datasets": {"fx": {"source": "folder", "registry": "fx"}, "demo": SMALL_DEMO | {"train": 2}}}
    out = tmp_path / "out"
    with pytest.raises(ManualDownloadRequired) as err:
        build_datasets(config, out_dir=str(out))
    target = (out / "downloads/fx.zip").resolve()
    assert str(target) in str(err.value) and "https://example.org/fx" in str(err.value)
    assert (out / "shards/demo/train/manifest.json").is_file()  # the rest was built
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    summary = build_datasets(config, out_dir=str(out))
    assert summary["fx"] == {"test": {"fusion": 3}}


def test_task_runner_selection():
    from prefect.task_runners import ThreadPoolTaskRunner

    assert isinstance(make_task_runner(None), ThreadPoolTaskRunner)
    assert isinstance(make_task_runner("threads", {"max_workers": 2}), ThreadPoolTaskRunner)
    with pytest.raises(ValueError, match="threads, dask or ray"):
        make_task_runner("spark")
    for name, module in (("dask", "prefect_dask"), ("ray", "prefect_ray")):
        if importlib.util.find_spec(module) is None:
            with pytest.raises(ImportError, match=f"pip install prefect-{name}"):
                make_task_runner(name)


def test_stage_entry_reads_params(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("profile: tiny\nseed: 3\nprofiles:\n  tiny:\n    data:\n      min_shards: 1\n"
                      "      datasets:\n        demo: {source: demo, train: 1, test: 1}\n")
    from pipelines.stages import build_data

    assert build_data.main(["--params", str(params), "--out", str(tmp_path / "out")]) == 0
    manifest = json.loads((tmp_path / "out/shards/demo/test/manifest.json").read_text())
    assert manifest["fusion"]["count"] == 1 and manifest["generation"]["seed"] == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout} s")


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_served_deployment_builds_demo(tmp_path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect_home"), PREFECT_API_URL=api,
               PREFECT_RUNNER_POLL_FREQUENCY="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=str(REPO_ROOT), PREFECT_LOGGING_LEVEL="WARNING")
    prefect = str(Path(sys.executable).parent / "prefect")
    config = tmp_path / "data.json"
    config.write_text(json.dumps({"min_shards": 1, "datasets": {"demo": {"source": "demo", "train": 2, "test": 1}},
                                  "degraded_eval": {"datasets": ["demo"], "tasks": ["oe+lc"]}}))
    out = tmp_path / "out"
    server = serve = None
    with open(tmp_path / "server.log", "w") as server_log, open(tmp_path / "serve.log", "w") as serve_log:
        try:
            server = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                      env=env, stdout=server_log, stderr=subprocess.STDOUT)
            _wait_healthy(api, server, 90)
            serve = subprocess.Popen([sys.executable, "-m", "pipelines.flows.build_datasets", "serve", "--name",
                                      "pytest", "--config", str(config), "--out-dir", str(out)],
                                     env=env, cwd=REPO_ROOT, stdout=serve_log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 60
            while True:  # the deployment appears once serve has registered it
                run = subprocess.run([prefect, "deployment", "run", "build-datasets/pytest", "--watch"], env=env,
                                     capture_output=True, text=True, timeout=120)
                if run.returncode == 0 or "not found" not in (run.stdout + run.stderr).lower():
                    break
                if time.monotonic() > deadline or serve.poll() is not None:
                    break
                time.sleep(1)
            logs = run.stdout + run.stderr + (tmp_path / "serve.log").read_text()
            assert run.returncode == 0, logs[-3000:]
            assert "completed" in (run.stdout + run.stderr).lower(), logs[-3000:]
        finally:
            _stop(serve)
            _stop(server)
    manifest = json.loads((out / "shards/demo/train/manifest.json").read_text())
    assert manifest["fusion"]["count"] == 2 and manifest["stage1"]["count"] == 16
    assert len(list(iter_fusion_pairs(out / "shards/demo-degraded/oe+lc"))) == 1


@pytest.mark.slow
def test_dask_cluster_of_worker_processes_writes_the_same_bytes_as_threads(tmp_path):
    """``data.task_runner: dask`` on a local cluster of two worker processes (prefect-dask, installed
    by the project) writes byte-identical shards and manifests to the thread runner."""
    pytest.importorskip("prefect_dask", reason="prefect-dask is part of requirements.txt: run make install")
    source = trees.folder_tree(tmp_path / "src/pairs", n=7)
    config = _portable_config(source)
    build_datasets(config, out_dir=str(tmp_path / "threads"), task_runner="threads")
    config = config | {"task_runner_options": {"cluster_kwargs": {"n_workers": 2, "threads_per_worker": 1,
                                                                  "processes": True, "dashboard_address": None}}}
    build_datasets(config, out_dir=str(tmp_path / "dask"), task_runner="dask")
    threads, dask = _tree_files(tmp_path / "threads" / "shards"), _tree_files(tmp_path / "dask" / "shards")
    assert sorted(threads) == sorted(dask) and any(name.endswith(".tar") for name in threads)
    assert threads == dask
