"""Fetch, verify and unpack dataset archives listed in ``data_prep/registry.yaml``.

* :func:`download` streams a URL to ``<dest>.part`` (same folder), resumes an interrupted transfer
  with an HTTP ``Range`` request, verifies the sha256, and only then renames the file into place.
  A checksum mismatch deletes the partial file and raises :class:`ChecksumError`; a broken
  connection raises :class:`DownloadInterrupted` (a ``ConnectionError``: retried, resumed).
* :func:`safe_extract` unpacks a ``zip``/``tar``/``tar.gz``/``tgz``/``tar.xz`` archive into a
  temporary sibling folder and renames it into place; it refuses absolute paths, ``..``
  components, links pointing outside the target and special files (:class:`UnsafeArchiveError`),
  leaving nothing behind.
* :func:`ensure_source` does both for one registry entry and returns the extracted root. Entries
  with ``manual: true`` (data sets behind a login or a cloud-drive page) are never fetched: when the
  archive is not yet in ``<data>/downloads/``, it raises :class:`ManualDownloadRequired` whose one
  message names the file to fetch, where to get it and the exact path to put it in; the next run
  picks it up.

Registry entry fields: ``url`` (or ``manual: true`` + ``page``), ``filename``, ``sha256`` (``null``:
not pinned yet — the computed digest is logged and recorded in the manifest's source versions),
``archive`` (``zip``, ``tar``, ``tar.gz``, ``tgz``, ``tar.xz`` or ``none``), ``layout`` (the parser
of :mod:`data_prep.sources`), ``root`` (sub-folder of the extracted tree handed to the parser),
``version`` and ``citation``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import yaml
from tqdm import tqdm

from lure.fileio import sha256_file

REGISTRY_PATH = Path(__file__).with_name("registry.yaml")
ARCHIVE_TYPES = ("zip", "tar", "tar.gz", "tgz", "tar.xz", "none")
EXTRACTED_MARKER = ".lure-extracted.json"
CHUNK = 1 << 16


class ChecksumError(RuntimeError):
    """The downloaded file's sha256 differs from the registry's."""


class DownloadInterrupted(ConnectionError):
    """The connection ended before the whole file arrived; the partial file is kept for resuming."""


class UnsafeArchiveError(RuntimeError):
    """The archive holds a member that would escape the target folder."""


class ManualDownloadRequired(RuntimeError):
    """A data set must be downloaded by hand; the message says what and where to put it."""


def load_registry(path: str | Path | None = None) -> dict[str, dict]:
    """The source registry ``{id: entry}`` (default ``data_prep/registry.yaml``)."""
    path = Path(path) if path else REGISTRY_PATH
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    sources = data.get("sources", data)
    for sid, entry in sources.items():
        if entry.get("archive", "zip") not in ARCHIVE_TYPES:
            raise ValueError(f"{path}: source {sid!r} has archive {entry.get('archive')!r}; use one of {ARCHIVE_TYPES}")
        if not entry.get("manual") and not entry.get("url"):
            raise ValueError(f"{path}: source {sid!r} needs a 'url' or 'manual: true'")
    return sources


def is_network_error(exc: BaseException) -> bool:
    """True for errors worth retrying (connection resets, timeouts, interrupted transfers, HTTP 5xx/429)."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code == 429
    return isinstance(exc, ConnectionError | TimeoutError | urllib.error.URLError | http.client.HTTPException)


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One request: append to ``part`` from its current size (Range), or restart when the server
    ignores the range. Raises :class:`DownloadInterrupted` when the body ends early."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "lure-data/1", "Accept-Encoding": "identity"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) from the registry)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # range not satisfiable: we already have everything
            return
        raise
    with response:
        if have and response.status != 206:
            have = 0  # server ignored the range: start again
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        received = 0
        with open(part, "ab" if have else "wb") as fh, tqdm(
            total=(expected or 0) + have, initial=have, unit="B", unit_scale=True, disable=not progress,
            desc=part.name.removesuffix(".part"), leave=False,
        ) as bar:
            while True:
                try:
                    block = response.read(CHUNK)
                except (http.client.IncompleteRead, ConnectionError, TimeoutError, OSError) as err:
                    raise DownloadInterrupted(f"{url}: connection lost after {have + received} bytes ({err})") from err
                if not block:
                    break
                fh.write(block)
                received += len(block)
                bar.update(len(block))
            fh.flush()
            os.fsync(fh.fileno())
        if expected is not None and received < expected:
            raise DownloadInterrupted(f"{url}: transfer ended after {have + received} of {have + expected} bytes")


def download(url: str, dest: str | Path, sha256: str | None = None, attempts: int = 3, timeout: float = 60.0,
             progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically and return ``dest``.

    Streams into ``<dest>.part``; after an interruption the next attempt (up to ``attempts`` here,
    or a later call) resumes with ``Range``. When ``sha256`` is given and differs, the partial file
    is deleted and :class:`ChecksumError` raised; ``dest`` only ever holds a verified file.
    An existing ``dest`` with the right sha256 is returned without a request.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256.lower()):
        return dest
    part = dest.with_name(dest.name + ".part")
    last: BaseException | None = None
    for _ in range(max(1, attempts)):
        try:
            _fetch_once(url, part, timeout, progress)
            break
        except BaseException as err:  # noqa: BLE001 (re-raised unless a retryable network error)
            if not is_network_error(err):
                raise
            last = err
    else:
        assert last is not None
        raise last
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink()
        raise ChecksumError(
            f"{url}: sha256 {digest} does not match the registry's {sha256}; the download was deleted. "
            "Re-run to fetch it again; if it keeps failing the file changed upstream: check data_prep/registry.yaml."
        )
    os.replace(part, dest)
    return dest


def _check_member_path(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} contains '..'; refusing to extract")
    return path


def _link_stays_inside(member_path: PurePosixPath, link_target: str, hard: bool) -> bool:
    target = PurePosixPath(link_target.replace("\\", "/"))
    if target.is_absolute():
        return False
    joined = target if hard else member_path.parent / target
    depth = 0
    for part in joined.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


def check_archive(archive: str | Path, archive_type: str) -> None:
    """Raise :class:`UnsafeArchiveError` if any member of ``archive`` would land outside the target."""
    archive = Path(archive)
    if archive_type == "zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = _check_member_path(info.filename, archive)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    target = zf.read(info).decode("utf-8", "replace")
                    if not _link_stays_inside(path, target, hard=False):
                        raise UnsafeArchiveError(f"{archive}: link {info.filename!r} -> {target!r} leaves the target")
        return
    with tarfile.open(archive, "r:*") as tf:
        for member in tf.getmembers():
            path = _check_member_path(member.name, archive)
            if member.issym() or member.islnk():
                if not _link_stays_inside(path, member.linkname, hard=member.islnk()):
                    raise UnsafeArchiveError(f"{archive}: link {member.name!r} -> {member.linkname!r} leaves the target")
            elif not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device or fifo; refusing to extract")


def safe_extract(archive: str | Path, target: str | Path, archive_type: str | None = None) -> Path:
    """Check then extract ``archive`` into ``target`` atomically (temporary sibling, then rename).

    ``archive_type`` defaults to the file's suffix. ``target`` must not exist yet. Returns it.
    """
    archive, target = Path(archive), Path(target)
    kind = archive_type or next((t for t in ("tar.gz", "tar.xz", "tgz", "tar", "zip") if archive.name.endswith(t)), None)
    if kind not in ARCHIVE_TYPES or kind == "none":
        raise ValueError(f"{archive}: cannot tell the archive type; set 'archive' in the registry ({ARCHIVE_TYPES})")
    check_archive(archive, kind)
    tmp = target.with_name(target.name + ".extracting")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive, "r:*") as tf:
                tf.extractall(tmp, filter="data")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def ensure_source(source_id: str, data_dir: str | Path, registry: dict[str, dict] | None = None,
                  downloader: Callable[..., Path] = download, progress: bool = True) -> tuple[Path, dict]:
    """Make registry source ``source_id`` available under ``<data_dir>/raw/<id>`` and return
    ``(root for the parser, version info)``.

    Archives live in ``<data_dir>/downloads/<filename>``; a finished extraction is recorded in a
    marker file holding the archive's sha256, so re-runs skip it.
    """
    registry = registry if registry is not None else load_registry()
    if source_id not in registry:
        raise KeyError(f"unknown registry source {source_id!r}; known: {', '.join(sorted(registry))} (data_prep/registry.yaml)")
    entry = registry[source_id]
    data_dir = Path(data_dir)
    filename = entry.get("filename") or Path(entry["url"]).name
    archive = data_dir / "downloads" / filename
    target = data_dir / "raw" / source_id
    marker = target / EXTRACTED_MARKER
    expected = entry.get("sha256")
    if not archive.exists():
        if entry.get("manual"):
            raise ManualDownloadRequired(
                f"{source_id}: download {filename!r} by hand from {entry.get('page') or entry.get('url')} "
                f"and put it at {archive.resolve()}, then run build-datasets again"
            )
        downloader(entry["url"], archive, expected, progress=progress)
    digest = sha256_file(archive)
    if expected and digest != expected.lower():
        raise ChecksumError(f"{archive}: sha256 {digest} does not match the registry's {expected} for {source_id}; "
                            "delete the file and download it again")
    archive_type = entry.get("archive", "zip")
    if archive_type == "none":
        target.mkdir(parents=True, exist_ok=True)
        if not (target / filename).exists():
            shutil.copy2(archive, target / filename)
    else:
        current = None
        if marker.exists():
            try:
                current = json.loads(marker.read_text()).get("sha256")
            except ValueError:
                current = None
        if current != digest:
            safe_extract(archive, target, archive_type)
    marker.write_text(json.dumps({"sha256": digest, "source": source_id, "filename": filename}))
    root = target / entry["root"] if entry.get("root") else target
    info = {"id": source_id, "sha256": digest, "pinned": bool(expected), "version": entry.get("version", ""),
            "url": entry.get("url") or entry.get("page")}
    return root, info
