"""LocalDiskStore on a real temp directory: streaming put with size and SHA-1, sharded layout, atomic writes."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from esb.storage import CHUNK_SIZE, BlobNotFoundError, BlobStore, LocalDiskStore, StorageError


class Chunks(io.RawIOBase):
    """A stream that hands out ``total`` bytes in reads of at most ``piece`` and records the sizes asked for."""

    def __init__(self, total: int, piece: int = 64 * 1024, fail_after: int | None = None) -> None:
        self.left = total
        self.piece = piece
        self.fail_after = fail_after
        self.given = 0
        self.asked: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        if self.fail_after is not None and self.given >= self.fail_after:
            raise OSError("peer went away")
        n = min(self.left, self.piece if size < 0 else min(size, self.piece))
        self.left -= n
        start = self.given
        self.given += n
        return bytes((start + i) % 251 for i in range(n))


def expected(total: int) -> bytes:
    return bytes(i % 251 for i in range(total))


def visible_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> LocalDiskStore:
    return LocalDiskStore(tmp_path / "blobs")


def test_put_streams_in_chunks_and_returns_size_and_sha1(store: LocalDiskStore) -> None:
    total = 3 * CHUNK_SIZE + 12345
    source = Chunks(total)
    blob = store.put("doc-1", source)
    data = expected(total)
    assert (blob.key, blob.size, blob.sha1) == ("doc-1", total, hashlib.sha1(data).hexdigest())
    assert all(0 < size <= CHUNK_SIZE for size in source.asked), "never read(-1): the whole stream"
    assert store.exists("doc-1") and store.size("doc-1") == total
    with store.open("doc-1") as stream:
        assert stream.read() == data


def test_layout_is_sharded_by_the_sha1_of_the_key(store: LocalDiskStore) -> None:
    store.put("abc", io.BytesIO(b"x"))
    shard = hashlib.sha1(b"abc").hexdigest()
    path = store.root / shard[:2] / shard[2:4] / "abc"
    assert path.read_bytes() == b"x"
    assert store.local_path("abc") == str(path)
    assert visible_files(store.root) == [path]


def test_empty_blob_and_replace(store: LocalDiskStore) -> None:
    empty = store.put("e", io.BytesIO(b""))
    assert (empty.size, empty.sha1) == (0, hashlib.sha1(b"").hexdigest())
    store.put("e", io.BytesIO(b"second"))
    with store.open("e") as stream:
        assert stream.read() == b"second"


def test_missing_blobs(store: LocalDiskStore) -> None:
    with pytest.raises(BlobNotFoundError, match="no blob 'nope'"):
        store.open("nope")
    with pytest.raises(KeyError):
        store.size("nope")
    assert not store.exists("nope")
    assert store.local_path("nope") is None
    assert store.delete("nope") is False
    store.put("nope", io.BytesIO(b"1"))
    assert store.delete("nope") is True
    assert store.delete("nope") is False


@pytest.mark.parametrize("key", ["", "../etc", "a/b", ".hidden", "-x", "a b", "é", "x" * 201])
def test_keys_that_could_escape_or_collide_are_refused(store: LocalDiskStore, key: str) -> None:
    with pytest.raises(StorageError, match="invalid blob key"):
        store.put(key, io.BytesIO(b"x"))
    assert visible_files(store.root) == []


def test_a_failed_write_leaves_nothing_and_keeps_the_previous_blob(store: LocalDiskStore) -> None:
    store.put("k", io.BytesIO(b"old content"))
    source = Chunks(5 * CHUNK_SIZE, piece=CHUNK_SIZE, fail_after=2 * CHUNK_SIZE)
    with pytest.raises(StorageError, match="peer went away"):
        store.put("k", source)
    with store.open("k") as stream:
        assert stream.read() == b"old content"
    assert [p.name for p in visible_files(store.root)] == ["k"], "no temp file left behind"
    with pytest.raises(StorageError):
        store.put("fresh", Chunks(2 * CHUNK_SIZE, piece=CHUNK_SIZE, fail_after=CHUNK_SIZE))
    assert not store.exists("fresh")


def test_no_partial_blob_is_visible_while_writing(store: LocalDiskStore) -> None:
    seen: list[bool] = []

    class Watching(Chunks):
        def read(self, size: int = -1) -> bytes:
            seen.append(store.exists("w") or store.local_path("w") is not None)
            return super().read(size)

    store.put("w", Watching(3 * CHUNK_SIZE, piece=CHUNK_SIZE))
    assert seen and not any(seen)
    assert store.size("w") == 3 * CHUNK_SIZE


def test_a_writer_killed_mid_blob_leaves_no_blob_and_its_temp_file_is_removable(
    store: LocalDiskStore, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import io, sys, time
        from esb.storage import LocalDiskStore

        class Slow(io.RawIOBase):
            n = 0
            def readable(self): return True
            def read(self, size=-1):
                self.n += 1
                if self.n == 3:
                    print("writing", flush=True)
                    time.sleep(60)
                return b"x" * 65536

        LocalDiskStore({str(store.root)!r}).put("killed", Slow())
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=os.getcwd()) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"writing\n"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
    assert not store.exists("killed")
    temps = visible_files(store.root)
    assert len(temps) == 1 and temps[0].name.startswith(".killed.") and temps[0].stat().st_size == 2 * 65536
    assert [b.key for b in store.scan()] == []
    assert store.remove_partials() == 0, "a young temp file may be a write in progress"
    old = time.time() - 7200
    os.utime(temps[0], (old, old))
    assert store.remove_partials() == 1
    assert visible_files(store.root) == []


def test_scan_lists_every_blob_with_size_and_time(store: LocalDiskStore) -> None:
    for n in range(5):
        store.put(f"b{n}", io.BytesIO(b"y" * n))
    found = {info.key: info for info in store.scan()}
    assert sorted(found) == [f"b{n}" for n in range(5)]
    assert [found[f"b{n}"].size for n in range(5)] == list(range(5))
    assert all(abs((info.modified - found["b0"].modified).total_seconds()) < 60 for info in found.values())


def test_the_store_is_a_blob_store(store: LocalDiskStore) -> None:
    assert isinstance(store, BlobStore)
    assert "blobs" in repr(store)
