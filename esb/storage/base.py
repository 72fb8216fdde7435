"""The blob store interface: where document bytes live, apart from the database.

Documents (XDS, DICOM) can be hundreds of megabytes, so a store takes and
gives streams, never whole byte strings, and computes what the protocols need
(size, SHA-1) while the bytes go through, in one pass. Keys are opaque to the
store and chosen by the caller; the same small interface fits a local disk
now and an object store (S3) or a tiered store later.

A ``put`` is all or nothing: a reader never sees a partly written blob, and a
failed or interrupted write leaves no blob under the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from esb.errors import StorageError

#: bytes per read/write: large enough for throughput, small enough to keep memory flat
CHUNK_SIZE = 1024 * 1024

#: keys: what every backend can name (S3 object keys, file names) without escaping
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


@dataclass(frozen=True)
class StoredBlob:
    """What a ``put`` wrote: the key, the size in bytes and the SHA-1 (hex, lower case)."""

    key: str
    size: int
    sha1: str


@dataclass(frozen=True)
class BlobInfo:
    """A blob seen by :meth:`BlobStore.scan` (for sweeps): key, size and last change (naive UTC)."""

    key: str
    size: int
    modified: dt.datetime


def check_key(key: str) -> str:
    """``key`` if it is a valid blob key, else StorageError (keys never carry path separators)."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise StorageError(f"invalid blob key {key!r}: 1-200 of A-Z a-z 0-9 . _ - (not starting with . _ -)")
    return key


def copy_hashing(source: BinaryIO, target: BinaryIO, chunk_size: int = CHUNK_SIZE) -> tuple[int, str]:
    """Copy ``source`` to ``target`` in chunks; return (size, SHA-1 hex) of what went through."""
    digest = hashlib.sha1(usedforsecurity=False)
    size = 0
    while True:
        chunk = source.read(chunk_size)
        if not chunk:
            return size, digest.hexdigest()
        digest.update(chunk)
        target.write(chunk)
        size += len(chunk)


class BlobStore(ABC):
    """Where blobs live. Implementations are safe to use from several threads."""

    @abstractmethod
    def put(self, key: str, stream: BinaryIO) -> StoredBlob:
        """Store what ``stream`` yields (read in chunks) under ``key``, atomically; replaces a blob with that key."""

    def adopt(self, key: str, path: str | os.PathLike[str]) -> StoredBlob:
        """Take the file at ``path`` as the blob of ``key``: afterwards the store owns it and ``path`` is gone.

        For bytes that already sit in a file (a spooled upload, a received DICOM
        instance), so they are written once: a local store renames the file into
        place when it can. The size and SHA-1 are computed by reading the file,
        never taken on trust. This default copies through :meth:`put` and then
        removes the file; a failed copy leaves the file where it was.
        """
        try:
            with open(path, "rb") as source:
                stored = self.put(key, source)
        except OSError as exc:
            raise StorageError(f"cannot adopt {os.fspath(path)!r} as blob {key!r}: {exc.strerror or exc}") from exc
        os.unlink(path)
        return stored

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary stream of the blob (the caller closes it); BlobNotFoundError if there is none."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the blob; False if there was none (deleting twice is harmless)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes; BlobNotFoundError if there is none."""

    @abstractmethod
    def scan(self) -> Iterator[BlobInfo]:
        """Every blob, in no particular order (sweeps for blobs that nothing references)."""

    def local_path(self, key: str) -> str | None:
        """A file path holding the blob, for callers that can stream a file (sendfile, MTOM parts).

        None when the store is not a local file system (object stores); callers
        then use :meth:`open`. The file belongs to the store: read it, never
        move or delete it.
        """
        return None
