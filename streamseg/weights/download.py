"""Resumable, verified, concurrency-safe file downloads with nothing but urllib.

Weights files are hundreds of megabytes and the networks they come over are
flaky, so a download goes to ``<file>.part`` (resumed with an HTTP ``Range``
request after an interruption), is checked against its sha256 and only then
moved into place atomically: a file at its final path is always complete.
A lock file next to it keeps two processes from writing the same ``.part``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from streamseg.errors import ConfigError, DownloadError

if TYPE_CHECKING:
    import http.client

__all__ = ["download", "sha256_file", "verify_file"]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-f]{1,64}")
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class _Transient(Exception):
    """A failure worth retrying (and resuming from the ``.part`` already written)."""


class _Fatal(Exception):
    """A failure no retry will fix (404, connection refused, DNS failure)."""


def _normalize_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not _HEX.fullmatch(value):
        raise ConfigError(
            f"sha256 {sha256!r} is not a hex digest or hex prefix; give 1 to 64 hex characters, or None to skip verification"
        )
    return value


def sha256_file(path: Path) -> str:
    """The full hex sha256 of a file, read in chunks so big checkpoints need no big buffer."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamp_key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _cached_digest(path: Path) -> str:
    """The file's sha256, remembered in ``<file>.sha256`` while its size and mtime are unchanged.

    Hashing a large checkpoint on every start costs seconds; the stamp makes re-use free.
    """
    stamp = _stamp_path(path)
    key = _stamp_key(path)
    with contextlib.suppress(OSError, ValueError):
        digest, size, mtime = stamp.read_text().split()
        if f"{size} {mtime}" == key and _HEX.fullmatch(digest):
            return digest
    digest = sha256_file(path)
    _write_stamp(path, digest)
    return digest


def _write_stamp(path: Path, digest: str) -> None:
    stamp = _stamp_path(path)
    tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(f"{digest} {_stamp_key(path)}\n")
        os.replace(tmp, stamp)
    except OSError as exc:  # a read-only cache still works, it just re-hashes next time
        log.debug("could not record the sha256 of %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


def verify_file(path: Path, sha256: str | None) -> bool:
    """Whether ``path`` matches ``sha256`` (full digest or prefix, any case); ``None`` matches anything."""
    expected = _normalize_sha256(sha256)
    return expected is None or _cached_digest(Path(path)).startswith(expected)


def _lock(f: IO[bytes], dest: Path) -> None:
    """Take an exclusive lock held by the OS, so a crashed process never leaves it stuck."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        while True:
            try:
                msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                time.sleep(0.2)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("waiting for another process downloading to %s", dest)
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)


def _unlock(f: IO[bytes]) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _offline_hint(url: str, dest: Path, reason: str) -> str:
    return (
        f"could not download {url}: {reason}. If this machine is offline, download the file elsewhere "
        f"and place it at {dest}"
    )


def download(
    url: str,
    dest: Path,
    *,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 2,
) -> Path:
    """Download ``url`` to ``dest`` unless a (verified) copy is already there; returns ``dest``.

    ``sha256`` is a full hex digest or a prefix of one. Interrupted transfers
    are retried ``retries`` times, resuming where they stopped. Raises
    :class:`DownloadError` when the file cannot be fetched or does not match.
    """
    dest = Path(dest)
    expected = _normalize_sha256(sha256)
    if (reused := _reuse(dest, expected)) is not None:
        return reused
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock_file = open(dest.with_name(dest.name + ".lock"), "a+b")
    except OSError as exc:
        raise DownloadError(
            f"cannot write to the weights cache {dest.parent}: {exc}; make it writable or set "
            f"STREAMSEG_CACHE to a writable directory"
        ) from exc
    with lock_file:
        _lock(lock_file, dest)
        try:
            # Another process may have finished the same download while we waited for the lock.
            if (reused := _reuse(dest, expected)) is not None:
                return reused
            return _download_locked(url, dest, expected, progress=progress, timeout=timeout, retries=retries)
        finally:
            _unlock(lock_file)


def _reuse(dest: Path, expected: str | None) -> Path | None:
    """``dest`` if it is already there and intact; a corrupt copy is removed so it gets fetched again."""
    if not dest.is_file():
        return None
    digest = _cached_digest(dest) if expected is not None else None
    if digest is None or digest.startswith(expected or ""):
        log.debug("using cached %s", dest)
        return dest
    log.warning(
        "cached file %s has sha256 %s but %s… was expected; deleting it and downloading it again",
        dest,
        digest,
        expected,
    )
    for path in (dest, _stamp_path(dest)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return None


def _download_locked(url: str, dest: Path, expected: str | None, *, progress: bool, timeout: float, retries: int) -> Path:
    part = dest.with_name(dest.name + ".part")
    if expected is None:
        log.warning("no sha256 is known for %s: the downloaded file cannot be verified", url)
    attempt = 0
    while True:
        try:
            _fetch(url, part, progress=progress, timeout=timeout)
            break
        except _Fatal as exc:
            raise DownloadError(_offline_hint(url, dest, str(exc))) from exc.__cause__
        except _Transient as exc:
            if attempt >= retries:
                raise DownloadError(
                    _offline_hint(url, dest, f"{exc} (gave up after {attempt + 1} attempts)")
                ) from exc.__cause__
            attempt += 1
            delay = min(0.5 * 2 ** (attempt - 1), 8.0)
            log.warning("download of %s interrupted (%s); retry %d/%d in %.1fs", url, exc, attempt, retries, delay)
            time.sleep(delay)
        except OSError as exc:  # writing the .part failed: disk full, permissions
            raise DownloadError(
                f"could not write {part} while downloading {url}: {exc}; free some space or set "
                f"STREAMSEG_CACHE to another directory"
            ) from exc
    digest = sha256_file(part)
    if expected is not None and not digest.startswith(expected):
        part.unlink()
        raise DownloadError(
            f"the file downloaded from {url} has sha256 {digest}, but {expected} was expected; it was deleted. "
            f"The server sent a different or corrupted file: try again later, or download it by hand, check "
            f"its sha256 and place it at {dest}"
        )
    os.replace(part, dest)
    _write_stamp(dest, digest)
    log.info("downloaded %s to %s", url, dest)
    return dest


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    import http.client  # urllib.request pulls in ssl and email: only load them to actually download
    import urllib.error
    import urllib.request

    from streamseg import __version__

    headers = {"User-Agent": f"streamseg/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        reason = f"HTTP {exc.code} {exc.reason}"
        raise (_Transient if exc.code in _TRANSIENT_STATUS else _Fatal)(reason) from exc
    except urllib.error.URLError as exc:
        cause = exc.reason
        if isinstance(cause, (TimeoutError, ConnectionResetError, ConnectionAbortedError)):
            raise _Transient(str(cause)) from exc
        raise _Fatal(str(cause)) from exc
    except (OSError, http.client.HTTPException) as exc:  # reset or timed out mid-handshake
        raise _Transient(f"{type(exc).__name__}: {exc}") from exc


def _fetch(url: str, part: Path, *, progress: bool, timeout: float) -> None:
    """Fill ``part`` with the body of ``url``, continuing an existing ``part`` when the server allows it."""
    import http.client
    import urllib.error

    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except _Fatal as exc:
        if offset and isinstance(exc.__cause__, urllib.error.HTTPError) and exc.__cause__.code == 416:
            # The part is as long as (or longer than) the file: nothing sane to resume.
            log.info("server refused to resume %s; starting over", url)
            part.unlink()
            response = _open(url, 0, timeout)
            offset = 0
        else:
            raise
    with response:
        if offset and not _resumes_at(response, offset):
            log.info("server ignored the Range request for %s; restarting the download", url)
            offset = 0
        length = response.headers.get("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        total = offset + remaining if remaining is not None else None
        received = 0
        from tqdm import tqdm

        with (
            open(part, "ab" if offset else "wb") as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name[: -len(".part")],
                file=sys.stderr,
                disable=not progress or not sys.stderr.isatty(),
                leave=False,
            ) as bar,
        ):
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(f"connection lost after {offset + received} bytes: {exc}") from exc
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if remaining is not None and received < remaining:
        raise _Transient(f"connection closed after {offset + received} of {total} bytes")


def _resumes_at(response: http.client.HTTPResponse, offset: int) -> bool:
    """Whether the server answered the Range request with the bytes from ``offset`` on."""
    if response.status != 206:
        return False
    match = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    return bool(match) and int(match.group(1)) == offset
