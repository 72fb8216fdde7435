"""ITI-43 Retrieve Document Set at the repository: Success, PartialSuccess, Failure with the exact codes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from esb.schemas import xml_schema
from esb.storage import BlobInfo, BlobStore, LocalDiskStore, StoredBlob
from profiles.xds.config import XdsConfig
from profiles.xds.registry.register import Registry
from profiles.xds.repository import Repository
from profiles.xds.repository.provide import content_id
from tests.xds import samples
from tests.xds.repository_support import (
    errors,
    part,
    provide_request,
    retrieve_request,
    rows,
    status,
    xop_decoded,
)

OURS = samples.REPOSITORY_UNIQUE_ID
HOME = "urn:oid:1.2.156.112.9999.2"
XDS = "{urn:ihe:iti:xds-b:2007}"


def make(engine: sa.Engine, store: BlobStore, home: str = HOME) -> Repository:
    """A repository in front of the real registry (ITI-42 in process)."""
    config = XdsConfig(repository_unique_id=OURS, home_community_id=home)
    return Repository(engine, config, store, Registry(engine, config, samples.MASTER_OID).register)


def provide(repository: Repository, tmp_path: Path, content: bytes, mime_type: str = "text/xml") -> str:
    """Store one document through ITI-41 for a new patient; its uniqueId."""
    uid = samples.new_oid()
    pid = samples.add_patient(repository.engine)
    submit = samples.submission(pid, document={"unique_id": uid, "content": content, "mime_type": mime_type})
    attachment = part(tmp_path / "in", f"{uid}@example.org", content, mime_type)
    assert status(repository.provide(provide_request(submit, {"Document01": attachment}), [attachment])) == "Success"
    return uid


def responses(payload: Any) -> list[dict[str, str]]:
    return [
        {child.tag.removeprefix(XDS): (child.text or child[0].get("href")) for child in item}
        for item in payload.iterfind(f"{XDS}DocumentResponse")
    ]


def valid(payload: Any, attachments: list[Any]) -> bool:
    """The XOP infoset of the response validates against the XDS.b schema."""
    schema = xml_schema("xds.b")
    assert schema.validate(xop_decoded(payload, attachments)), schema.error_log
    return True


def test_every_document_found_is_success_with_mtom_parts(
    engine: sa.Engine, store: LocalDiskStore, tmp_path: Path
) -> None:
    repository = make(engine, store)
    pdf, xml = b"%PDF-1.7 " + bytes(range(256)) * 100, b"<cda/>"
    first, second = provide(repository, tmp_path, pdf, "application/pdf"), provide(repository, tmp_path, xml)
    request = retrieve_request((OURS, first), (OURS, second), home=HOME)
    assert xml_schema("xds.b").validate(request)
    payload, attachments = repository.retrieve(request)
    assert valid(payload, attachments)
    assert (status(payload), errors(payload)) == ("Success", [])
    found = responses(payload)
    assert [(r["HomeCommunityId"], r["RepositoryUniqueId"], r["DocumentUniqueId"], r["mimeType"]) for r in found] == [
        (HOME, OURS, first, "application/pdf"),
        (HOME, OURS, second, "text/xml"),
    ]
    assert [content_id(r["Document"]) for r in found] == [a.content_id for a in attachments]
    assert len({a.content_id for a in attachments}) == 2
    assert [a.read() for a in attachments] == [pdf, xml]
    assert [a.content_type for a in attachments] == ["application/pdf", "text/xml"]
    by_uid = {row.unique_id: row for row in rows(engine)}
    assert [a.path for a in attachments] == [store.local_path(by_uid[u].storage_key) for u in (first, second)]


def test_some_found_is_partial_success_with_an_error_per_miss(
    engine: sa.Engine, store: LocalDiskStore, tmp_path: Path
) -> None:
    repository = make(engine, store)
    uid = provide(repository, tmp_path, b"kept")
    unknown, elsewhere = samples.new_oid(), "1.2.3.4.5.6"
    payload, attachments = repository.retrieve(retrieve_request((OURS, unknown), (elsewhere, uid), (OURS, uid)))
    assert valid(payload, attachments)
    assert status(payload) == "PartialSuccess"
    assert errors(payload) == [("XDSDocumentUniqueIdError", unknown), ("XDSUnknownRepositoryId", elsewhere)]
    assert [r["DocumentUniqueId"] for r in responses(payload)] == [uid]
    assert [a.read() for a in attachments] == [b"kept"]


def test_nothing_found_is_failure_without_documents(engine: sa.Engine, store: LocalDiskStore) -> None:
    repository = make(engine, store)
    unknown = samples.new_oid()
    payload, attachments = repository.retrieve(retrieve_request((OURS, unknown), ("9.9.9", unknown)))
    assert valid(payload, attachments)
    assert (status(payload), errors(payload)) == (
        "Failure",
        [("XDSDocumentUniqueIdError", unknown), ("XDSUnknownRepositoryId", "9.9.9")],
    )
    assert responses(payload) == [] and attachments == []


def test_a_document_whose_blob_is_gone_is_not_available(
    engine: sa.Engine, store: LocalDiskStore, tmp_path: Path
) -> None:
    repository = make(engine, store)
    uid = provide(repository, tmp_path, b"lost")
    [row] = rows(engine)
    assert store.delete(row.storage_key)
    payload, attachments = repository.retrieve(retrieve_request((OURS, uid)))
    assert (status(payload), errors(payload), attachments) == ("Failure", [("XDSDocumentUniqueIdError", uid)], [])


def test_a_request_without_document_requests_is_a_failure(engine: sa.Engine, store: LocalDiskStore) -> None:
    payload, attachments = make(engine, store).retrieve(retrieve_request())
    assert (status(payload), errors(payload), attachments) == ("Failure", [("XDSRepositoryError", "")], [])


def test_no_home_community_id_when_none_is_configured(engine: sa.Engine, store: LocalDiskStore, tmp_path: Path) -> None:
    repository = make(engine, store, home="")
    uid = provide(repository, tmp_path, b"x")
    payload, attachments = repository.retrieve(retrieve_request((OURS, uid)))
    assert valid(payload, attachments)
    assert "HomeCommunityId" not in responses(payload)[0]


class ObjectStore(BlobStore):
    """A store with no local files (as S3 will be): retrieval falls back to open()."""

    def __init__(self, inner: LocalDiskStore) -> None:
        self.inner = inner

    def put(self, key: str, stream: BinaryIO) -> StoredBlob:
        return self.inner.put(key, stream)

    def open(self, key: str) -> BinaryIO:
        with self.inner.open(key) as stream:
            return io.BytesIO(stream.read())

    def delete(self, key: str) -> bool:
        return self.inner.delete(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        return self.inner.size(key)

    def scan(self) -> Iterator[BlobInfo]:
        return self.inner.scan()


def test_a_store_without_local_files_gives_in_memory_parts(
    engine: sa.Engine, store: LocalDiskStore, tmp_path: Path
) -> None:
    repository = make(engine, ObjectStore(store))
    uid = provide(repository, tmp_path, b"remote bytes")
    payload, attachments = repository.retrieve(retrieve_request((OURS, uid)))
    assert status(payload) == "Success"
    [attachment] = attachments
    assert (attachment.path, attachment.data) == (None, b"remote bytes")
