"""The content-addressed blob store on disk: ``DATA/blobs/ab/cd/<sha256>``.

A blob becomes visible in three steps: its bytes are written (and hashed) into a
temporary file in ``DATA/blobs/tmp/`` on the same file system, which is fsynced and
closed; it is renamed to its final name (atomic) and the directory fsynced; then the
index (:class:`samizdat.store.blobs.BlobIndex`) records it. Only the index says what
exists, so an upload that fails, is cut off or does not hash to what was announced
leaves nothing visible: its temporary file is removed at once, or at the next start if
the process died. Paths are built from validated lowercase hex only.

Everything here blocks (disk and SQL): the HTTP layer calls it from threads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import threading
from pathlib import Path
from typing import BinaryIO

from ..store.blobs import BlobIndex, BlobRecord, Removal
from .media import SHA256

log = logging.getLogger(__name__)

# os.writev takes at most IOV_MAX buffers (1024 on Linux).
_IOV_MAX = 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    views = [memoryview(c) for c in chunks if c]
    i = 0
    while i < len(views):
        n = os.writev(fd, views[i:i + _IOV_MAX])
        while n:
            if n >= len(views[i]):
                n -= len(views[i])
                i += 1
            else:
                views[i] = views[i][n:]
                n = 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BlobGone(Exception):
    """A hash-only upload lost the race with the blob's deletion: upload it again."""


class TempBlob:
    """Bytes on their way in: hashed as they are written; thread-safe, one writer at a time.

    ``path`` is None for a hash-only upload (the blob is already stored: its bytes are
    hashed to prove the uploader has them, and never written).
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path is not None:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.sha256: str | None = None

    def write(self, chunks: list[bytes]) -> None:
        with self._lock:
            for c in chunks:
                self._hash.update(c)
                self.size += len(c)
            if self._fd is not None:
                _write_all(self._fd, chunks)

    def finish(self) -> str:
        """Flush to disk, close, and return the hash of everything written."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
            self.sha256 = self._hash.hexdigest()
            return self.sha256

    def discard(self) -> None:
        """Close and remove the temporary file (idempotent)."""
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None
            if self.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                self.path = None


class BlobStore:
    def __init__(self, data_dir: Path, index: BlobIndex):
        self.root = Path(data_dir) / "blobs"
        self.tmp = self.root / "tmp"
        self.index = index
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Serialises "rename + index" of uploads with "index + unlink" of deletions, so a
        # blob being deleted and uploaded at once never ends as a row without its file.
        self._commit_lock = threading.Lock()

    def path_for(self, sha256: str) -> Path:
        if not SHA256.fullmatch(sha256):
            raise ValueError("not a lowercase sha256")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    # --- temporary files ----------------------------------------------------------------------

    def clean_temp(self) -> int:
        """Remove temporary files left by processes that are gone (or by an earlier
        process that had our pid). Returns how many were removed."""
        me = os.getpid()
        removed = 0
        for entry in os.scandir(self.tmp):
            pid_text = entry.name.split("-", 1)[0]
            if pid_text.isdigit() and int(pid_text) != me and _pid_alive(int(pid_text)):
                continue
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                os.unlink(entry.path)
                removed += 1
        if removed:
            log.info("removed %d unfinished uploads from %s", removed, self.tmp)
        return removed

    def temp_files(self) -> list[Path]:
        return sorted(self.tmp.iterdir())

    def new_temp(self, hash_only: bool = False) -> TempBlob:
        if hash_only:
            return TempBlob(None)
        return TempBlob(self.tmp / f"{os.getpid()}-{secrets.token_hex(8)}.part")

    # --- commits ------------------------------------------------------------------------------

    def _make_dirs(self, final: Path) -> None:
        created = []
        d = final.parent
        while not d.is_dir():
            created.append(d)
            d = d.parent
        for d in reversed(created):
            with contextlib.suppress(FileExistsError):
                d.mkdir()
            _fsync_dir(d.parent)

    def commit(self, tmp: TempBlob, mime: str, pubkey: str,
               now: int | None = None) -> tuple[BlobRecord, bool]:
        """Make a finished temporary blob visible and owned by ``pubkey``.

        Returns the record and whether the blob is new. If the blob is already stored
        the temporary file is dropped and only the owner is added.
        """
        sha = tmp.sha256
        if sha is None:
            raise ValueError("commit before finish")
        final = self.path_for(sha)
        with self._commit_lock:
            if tmp.path is None or self.index.get(sha) is not None:
                tmp.discard()
                record = self.index.add_owner(sha, pubkey, now)
                if record is None:
                    raise BlobGone(f"blob {sha} was deleted during the upload")
                return record, False
            self._make_dirs(final)
            os.replace(tmp.path, final)  # type: ignore[arg-type]
            tmp.path = None
            _fsync_dir(final.parent)
            return self.index.add(sha, tmp.size, mime, pubkey, now)

    def add_owner(self, sha256: str, pubkey: str, now: int | None = None) -> BlobRecord | None:
        with self._commit_lock:
            return self.index.add_owner(sha256, pubkey, now)

    def remove_owner(self, sha256: str, pubkey: str) -> Removal:
        with self._commit_lock:
            removal = self.index.remove_owner(sha256, pubkey)
            if removal.blob_gone:
                with contextlib.suppress(FileNotFoundError):
                    self.path_for(sha256).unlink()
        return removal

    # --- reads --------------------------------------------------------------------------------

    def get(self, sha256: str) -> BlobRecord | None:
        return self.index.get(sha256)

    def open(self, sha256: str) -> tuple[BlobRecord, BinaryIO] | None:
        """The record and an open file, or None if the blob is not stored."""
        record = self.index.get(sha256)
        if record is None:
            return None
        try:
            f = open(self.path_for(sha256), "rb")  # noqa: SIM115 (the caller closes it)
        except FileNotFoundError:
            log.warning("blob %s is indexed but its file is missing", sha256)
            return None
        size = os.fstat(f.fileno()).st_size
        if size != record.size:
            f.close()
            log.error("blob %s has %d bytes on disk, %d indexed: not served", sha256, size,
                      record.size)
            return None
        return record, f
