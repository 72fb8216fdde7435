"""Blobs as files under one directory, written atomically.

Layout: ``<root>/<h0h1>/<h2h3>/<key>`` where ``h`` is the SHA-1 of the key,
so a million documents spread over 65,536 directories of a few files each,
whatever the keys look like. A ``put`` writes ``.<key>.<random>.tmp`` beside
the final name, fsyncs it, renames it into place and fsyncs the directory:
a reader sees the whole blob or none, and a crash leaves at most a hidden
temp file (removed by :meth:`LocalDiskStore.remove_partials`), never a short
blob under a real key.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from esb.errors import BlobNotFoundError, StorageError
from esb.storage.base import CHUNK_SIZE, BlobInfo, BlobStore, StoredBlob, check_key, copy_hashing

TEMP_SUFFIX = ".tmp"


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).replace(tzinfo=None)


class LocalDiskStore(BlobStore):
    """A :class:`BlobStore` on a local (or mounted) file system."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalDiskStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Where the blob of ``key`` lives (whether or not it exists)."""
        shard = hashlib.sha1(check_key(key).encode("ascii"), usedforsecurity=False).hexdigest()
        return self.root / shard[:2] / shard[2:4] / key

    def _directory(self, key: str) -> Path:
        """The blob's directory, created (and its creation made durable) if needed."""
        directory = self.path(key).parent
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            _fsync_dir(directory.parent)
            _fsync_dir(self.root)
        return directory

    def put(self, key: str, stream: BinaryIO) -> StoredBlob:
        directory = self._directory(key)
        final = directory / key
        temp = directory / f".{key}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        try:
            with open(temp, "xb") as out:
                size, sha1 = copy_hashing(stream, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
        except BaseException as exc:
            temp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StorageError(f"cannot store blob {key!r} under {self.root}: {exc.strerror or exc}") from exc
            raise
        _fsync_dir(directory)
        return StoredBlob(key, size, sha1)

    def adopt(self, key: str, path: str | os.PathLike[str]) -> StoredBlob:
        """Rename ``path`` into place when it is on the store's file system, else copy it and remove it.

        The file is read once for its size and SHA-1 and fsynced before the
        rename, so the blob is as durable as one written by :meth:`put`.
        """
        directory = self._directory(key)
        source = Path(path)
        try:
            with open(source, "rb") as file:
                digest = hashlib.sha1(usedforsecurity=False)
                size = 0
                while chunk := file.read(CHUNK_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
                os.fsync(file.fileno())
            os.replace(source, directory / key)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise StorageError(f"cannot adopt {source.name!r} as blob {key!r}: {exc.strerror or exc}") from exc
            return super().adopt(key, source)  # another file system: copy, then remove the original
        _fsync_dir(directory)
        return StoredBlob(key, size, digest.hexdigest())

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {key!r} in {self.root}") from None

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {key!r} in {self.root}") from None

    def local_path(self, key: str) -> str | None:
        path = self.path(key)
        return str(path) if path.is_file() else None

    def scan(self) -> Iterator[BlobInfo]:
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith("."):
                    continue
                try:
                    stat = os.stat(os.path.join(directory, name))
                except FileNotFoundError:  # deleted while we walked
                    continue
                yield BlobInfo(name, stat.st_size, _utc(stat.st_mtime))

    def remove_partials(self, older_than: dt.timedelta = dt.timedelta(hours=1)) -> int:
        """Delete temp files of writes interrupted by a crash (older than ``older_than``); how many."""
        limit = dt.datetime.now(dt.UTC).replace(tzinfo=None) - older_than
        removed = 0
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
                    continue
                path = Path(directory) / name
                try:
                    if _utc(path.stat().st_mtime) < limit:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed
