"""Downloads against a real HTTP server on 127.0.0.1: resume after a truncated transfer, sha256
mismatch, manual-download message, and safe extraction refusing malicious archives."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from data_prep.download import (
    ChecksumError,
    DownloadInterrupted,
    ManualDownloadRequired,
    UnsafeArchiveError,
    download,
    ensure_source,
    load_registry,
    safe_extract,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class FixtureServer:
    """Serves ``files`` (path -> bytes) with Range support; paths in ``truncate_once`` send only
    half of the body on their first request, then drop the connection."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate_once: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                range_header = self.headers.get("Range")
                outer.requests.append((self.path, range_header))
                data = outer.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(range_header.split("=")[1].split("-")[0]) if range_header else 0
                body = data[start:]
                self.send_response(206 if range_header else 200)
                if range_header:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.path in outer.truncate_once:
                    outer.truncate_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture()
def server():
    srv = FixtureServer()
    srv.thread.start()
    yield srv
    srv.server.shutdown()
    srv.server.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_and_moves_into_place(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    dest = download(f"{server.url}/a.bin", tmp_path / "a.bin", _sha(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "a.bin.part").exists()
    download(f"{server.url}/a.bin", dest, _sha(PAYLOAD), progress=False)  # present and valid: no request
    assert len(server.requests) == 1


def test_truncated_transfer_resumes_with_range(server, tmp_path):
    server.files["/b.bin"] = PAYLOAD
    server.truncate_once.add("/b.bin")
    dest = download(f"{server.url}/b.bin", tmp_path / "b.bin", _sha(PAYLOAD), attempts=3, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[0] == ("/b.bin", None)
    assert server.requests[1] == ("/b.bin", f"bytes={len(PAYLOAD) // 2}-")


def test_interrupted_download_keeps_only_the_part_file_then_resumes(server, tmp_path):
    server.files["/c.bin"] = PAYLOAD
    server.truncate_once.add("/c.bin")
    with pytest.raises(DownloadInterrupted):
        download(f"{server.url}/c.bin", tmp_path / "c.bin", _sha(PAYLOAD), attempts=1, progress=False)
    assert not (tmp_path / "c.bin").exists()
    assert (tmp_path / "c.bin.part").stat().st_size == len(PAYLOAD) // 2
    download(f"{server.url}/c.bin", tmp_path / "c.bin", _sha(PAYLOAD), attempts=1, progress=False)  # next run
    assert (tmp_path / "c.bin").read_bytes() == PAYLOAD
    assert server.requests[-1][1] == f"bytes={len(PAYLOAD) // 2}-"


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.files["/d.zip"] = PAYLOAD[:-1] + b"X"  # corrupted
    with pytest.raises(ChecksumError, match="does not match"):
        download(f"{server.url}/d.zip", tmp_path / "d.zip", _sha(PAYLOAD), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_404_is_not_retried(server, tmp_path):
    import urllib.error

    with pytest.raises(urllib.error.HTTPError):
        download(f"{server.url}/missing.zip", tmp_path / "m.zip", None, attempts=3, progress=False)
    assert len(server.requests) == 1


def _tar(members: list[tarfile.TarInfo], data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for m in members:
            if m.isfile():
                m.size = len(data)
                tf.addfile(m, io.BytesIO(data))
            else:
                tf.addfile(m)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("members, why", [
    ([_member("ok/a.png"), _member("../evil.png")], "'..'"),
    ([_member("/tmp/evil.png")], "absolute"),
    ([_member("ok/link", tarfile.SYMTYPE, "../../outside")], "leaves the target"),
    ([_member("ok/link", tarfile.SYMTYPE, "/etc/passwd")], "leaves the target"),
    ([_member("ok/hard", tarfile.LNKTYPE, "../x")], "'..'|leaves the target"),
    ([_member("ok/dev", tarfile.CHRTYPE)], "device"),
])
def test_malicious_tar_is_refused(tmp_path, members, why):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar(members))
    with pytest.raises(UnsafeArchiveError, match=why):
        safe_extract(archive, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


def test_malicious_zip_is_refused(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine/a.txt", "a")
        zf.writestr("../../escape.txt", "b")
    with pytest.raises(UnsafeArchiveError, match=r"'\.\.'"):
        safe_extract(archive, tmp_path / "out")
    link_zip = tmp_path / "link.zip"
    with zipfile.ZipFile(link_zip, "w") as zf:
        info = zipfile.ZipInfo("fine/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../../etc")
    with pytest.raises(UnsafeArchiveError, match="leaves the target"):
        safe_extract(link_zip, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escape.txt").exists()


def test_safe_extract_good_archives(tmp_path):
    archive = tmp_path / "good.tar.gz"
    archive.write_bytes(_tar([_member("top/ir/1.png"), _member("top/vi/link.png", tarfile.SYMTYPE, "../ir/1.png")]))
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "top/ir/1.png").read_bytes() == b"x" and (out / "top/vi/link.png").is_symlink()


def _zip_folder_tree(path: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(2):
            zf.writestr(f"pairs/ir/{i}.png", _png(i, grey=True))
            zf.writestr(f"pairs/vi/{i}.png", _png(i))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _png(seed: int, grey: bool = False) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (20, 24) if grey else (20, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_ensure_source_download_extract_and_manual(server, tmp_path):
    data = _zip_folder_tree(tmp_path / "fx.zip")
    server.files["/fx.zip"] = data
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(
        "sources:\n"
        f"  fx: {{url: '{server.url}/fx.zip', filename: fx.zip, sha256: {_sha(data)}, archive: zip,"
        " layout: folder, root: pairs}\n"
        "  hand: {manual: true, page: 'https://example.org/data', filename: hand.zip, sha256: null, archive: zip,"
        " layout: folder, root: pairs}\n")
    registry = load_registry(registry_file)
    root, info = ensure_source("fx", tmp_path / "data", registry, progress=False)
    assert root == tmp_path / "data/raw/fx/pairs" and (root / "ir/0.png").is_file()
    assert info["sha256"] == _sha(data) and info["pinned"]
    n = len(server.requests)
    ensure_source("fx", tmp_path / "data", registry, progress=False)  # already there: no request
    assert len(server.requests) == n
    with pytest.raises(ManualDownloadRequired) as err:
        ensure_source("hand", tmp_path / "data", registry)
    expected_path = (tmp_path / "data/downloads/hand.zip").resolve()
    assert "hand.zip" in str(err.value) and str(expected_path) in str(err.value)
    assert "https://example.org/data" in str(err.value) and "\n" not in str(err.value)
    expected_path.write_bytes(data)  # the user puts it there; the next run picks it up
    root, info = ensure_source("hand", tmp_path / "data", registry)
    assert (root / "vi/1.png").is_file() and not info["pinned"]


def test_repository_registry_is_valid():
    registry = load_registry()
    assert {"lol", "reside-its", "reside-ots", "reside-sots", "exposure-errors", "ems", "llvip", "msrs", "m3fd",
            "roadscene"} <= set(registry)
    from data_prep.sources import PARSERS

    assert all(entry["layout"] in PARSERS for entry in registry.values())
