"""BlobStore.adopt: a file becomes a blob, renamed on one file system, copied across two; size and SHA-1 read."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from esb.errors import BlobNotFoundError, StorageError
from esb.storage import BlobInfo, BlobStore, LocalDiskStore, StoredBlob

SHM = Path("/dev/shm")


def payload(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def test_adopt_renames_on_the_same_file_system(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path / "blobs")
    source = tmp_path / "spool" / "incoming.dcm"
    source.parent.mkdir()
    data = payload(3 * 1024 * 1024 + 17)
    source.write_bytes(data)
    inode = source.stat().st_ino
    stored = store.adopt("k1.dcm", source)
    assert stored == StoredBlob("k1.dcm", len(data), hashlib.sha1(data, usedforsecurity=False).hexdigest())
    assert not source.exists()
    assert store.path("k1.dcm").stat().st_ino == inode  # moved, not copied
    with store.open("k1.dcm") as stream:
        assert stream.read() == data
    assert [b.key for b in store.scan()] == ["k1.dcm"]


def test_adopt_replaces_a_blob_with_the_same_key(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path / "blobs")
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_bytes(b"old")
    second.write_bytes(b"new!")
    store.adopt("k", first)
    assert store.adopt("k", second).size == 4
    with store.open("k") as stream:
        assert stream.read() == b"new!"


@pytest.fixture
def other_file_system() -> Iterator[Path]:
    if not SHM.is_dir():
        pytest.fail("/dev/shm is needed: a second file system for the copy path of adopt")
    directory = Path(tempfile.mkdtemp(dir=SHM, prefix="esb-adopt-"))
    yield directory
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


def test_adopt_copies_across_file_systems(tmp_path: Path, other_file_system: Path) -> None:
    assert os.stat(other_file_system).st_dev != os.stat(tmp_path).st_dev
    store = LocalDiskStore(tmp_path / "blobs")
    source = other_file_system / "incoming.dcm"
    data = payload(2 * 1024 * 1024 + 5)
    source.write_bytes(data)
    stored = store.adopt("k2.dcm", source)
    assert (stored.size, stored.sha1) == (len(data), hashlib.sha1(data, usedforsecurity=False).hexdigest())
    assert not source.exists()
    assert store.path("k2.dcm").read_bytes() == data


def test_adopt_of_a_missing_file_or_a_bad_key_is_a_storage_error(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path / "blobs")
    with pytest.raises(StorageError):
        store.adopt("k", tmp_path / "missing")
    source = tmp_path / "x"
    source.write_bytes(b"x")
    with pytest.raises(StorageError):
        store.adopt("../escape", source)
    assert source.exists() and list(store.scan()) == []


class MemoryStore(BlobStore):
    """A store that is not a file system (like an object store): adopt goes through put."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, key: str, stream: BinaryIO) -> StoredBlob:
        data = stream.read()
        self.blobs[key] = data
        return StoredBlob(key, len(data), hashlib.sha1(data, usedforsecurity=False).hexdigest())

    def open(self, key: str) -> BinaryIO:
        if key not in self.blobs:
            raise BlobNotFoundError(key)
        return io.BytesIO(self.blobs[key])

    def delete(self, key: str) -> bool:
        return self.blobs.pop(key, None) is not None

    def exists(self, key: str) -> bool:
        return key in self.blobs

    def size(self, key: str) -> int:
        return len(self.blobs[key])

    def scan(self) -> Iterator[BlobInfo]:
        return iter(())


def test_the_default_adopt_copies_and_removes_the_file(tmp_path: Path) -> None:
    store = MemoryStore()
    source = tmp_path / "incoming"
    source.write_bytes(b"bytes")
    assert store.adopt("k", source) == StoredBlob("k", 5, hashlib.sha1(b"bytes", usedforsecurity=False).hexdigest())
    assert store.blobs == {"k": b"bytes"} and not source.exists()
    with pytest.raises(StorageError):
        store.adopt("k", tmp_path / "missing")
