"""A 200 MB document goes through ITI-41 and ITI-43 with memory that does not grow with it.

The database plays no part in what is measured, so this runs on SQLite only, and the
registry is a stand-in that accepts (the metadata is small and not what is measured).
"""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

from esb.exchange import Attachment
from esb.journal import database
from esb.storage import LocalDiskStore
from profiles.xds.config import XdsConfig
from profiles.xds.repository import Repository
from tests.xds import samples
from tests.xds.repository_support import Recorder, entry_slots, provide_request, retrieve_request, rows, status

MB = 1024 * 1024
SIZE = 200 * MB
#: far below the document: a few chunks in flight, never the document
LIMIT = 16 * MB


def test_a_200_mb_document_is_streamed_through_provide_and_retrieve(tmp_path: Path) -> None:
    block = bytes(range(256)) * (MB // 256)
    source = tmp_path / "part.bin"
    digest = hashlib.sha1()
    with open(source, "wb") as out:
        for n in range(SIZE // MB):
            chunk = block[n % 256 :] + block[: n % 256]
            digest.update(chunk)
            out.write(chunk)
    expected = digest.hexdigest()
    del block, chunk

    engine = database.make_engine(f"sqlite:///{tmp_path}/journal.db")
    database.upgrade(engine)
    store = LocalDiskStore(tmp_path / "documents")
    registry = Recorder()
    repository = Repository(engine, XdsConfig(), store, registry)
    uid = samples.new_oid()
    submit = samples.submission("p1^^^&1.2.3&ISO", document={"unique_id": uid, "omit": ("hash", "size")})
    attachment = Attachment("big@example.org", "application/dicom", path=str(source))
    request = provide_request(submit, {"Document01": attachment})
    try:
        tracemalloc.start()
        answer = repository.provide(request, [attachment])
        payload, parts = repository.retrieve(retrieve_request((samples.REPOSITORY_UNIQUE_ID, uid)))
        check = hashlib.sha1()
        size = 0
        with parts[0].open() as stream:
            while chunk := stream.read(MB):
                check.update(chunk)
                size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        [row] = rows(engine)
    finally:
        tracemalloc.stop()
        engine.dispose()
    assert status(answer) == "Success" and status(payload) == "Success"
    assert entry_slots(registry.sent[0])["Document01"]["hash"] == [expected]
    assert entry_slots(registry.sent[0])["Document01"]["size"] == [str(SIZE)]
    assert (size, check.hexdigest()) == (SIZE, expected)
    assert parts[0].path is not None and Path(parts[0].path).stat().st_size == SIZE
    assert peak < LIMIT, f"peak {peak / MB:.1f} MB while moving a {SIZE // MB} MB document"
    assert (row.unique_id, row.size, row.hash) == (uid, SIZE, expected)
