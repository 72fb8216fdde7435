"""ITI-41 Provide and Register Document Set-b at the repository: store, check, forward (ITI-42), roll back.

Real database (SQLite, and PostgreSQL with ESB_TEST_PG_URL), a real store in a
temp directory and the real registry (ITI-42, in process, on the same database)
behind a recorder, so the tests also see what was forwarded.
"""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import sqlalchemy as sa

from esb.exchange import Attachment
from esb.schemas import xml_schema
from esb.storage import LocalDiskStore, StorageError, StoredBlob
from profiles.xds.config import XdsConfig
from profiles.xds.registry.register import Registry
from profiles.xds.registry.schema import objects
from profiles.xds.repository import Repository
from tests.xds import samples
from tests.xds.repository_support import (
    Recorder,
    blob_keys,
    entry_slots,
    errors,
    part,
    provide_request,
    refusing_registry,
    rows,
    status,
)

OURS = samples.REPOSITORY_UNIQUE_ID


@pytest.fixture
def registry(engine: sa.Engine) -> Recorder:
    return Recorder(Registry(engine, XdsConfig(), samples.MASTER_OID).register)


@pytest.fixture
def pid(engine: sa.Engine) -> str:
    """A patient the registry knows (an active EMPI master ID)."""
    return samples.add_patient(engine)


@pytest.fixture
def repository(engine: sa.Engine, store: LocalDiskStore, registry: Recorder) -> Repository:
    return Repository(engine, XdsConfig(repository_unique_id=OURS), store, registry)


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def stored_bytes(store: LocalDiskStore, key: str) -> bytes:
    with store.open(key) as stream:
        return stream.read()


def two_documents(
    pid: str, tmp_path: Path, **document: Any
) -> tuple[Any, dict[str, bytes | Attachment], list[Attachment]]:
    """A submission of Document01 (an MTOM part) and Document02 (inline base64) and its parts."""
    mtom, inline = b"<report>mtom</report>" * 1000, b"%PDF-1.4 inline"
    submit = samples.submission(pid, documents=2)
    for doc_id, content in (("Document01", mtom), ("Document02", inline)):
        entry = samples.find(submit, doc_id)
        entry.getparent().replace(entry, samples.document_entry(pid, id=doc_id, content=content, **document))
    attachment = part(tmp_path / "parts", "1.urn:uuid:0f6f@example.org", mtom)
    return submit, {"Document01": attachment, "Document02": inline}, [attachment]


def test_mtom_and_inline_documents_are_stored_and_forwarded_with_hash_size_and_repository(
    repository: Repository, registry: Recorder, engine: sa.Engine, store: LocalDiskStore, tmp_path: Path, pid: str
) -> None:
    submit, contents, parts = two_documents(pid, tmp_path)
    request = provide_request(submit, contents)
    answer = repository.provide(request, parts)
    assert xml_schema("ebrs-rs").validate(answer), xml_schema("ebrs-rs").error_log
    assert (status(answer), errors(answer)) == ("Success", [])
    [sent] = registry.sent
    assert xml_schema("ebrs-lcm").validate(sent), xml_schema("ebrs-lcm").error_log
    mtom, inline = parts[0].read(), contents["Document02"]
    assert isinstance(inline, bytes)
    slots = entry_slots(sent)
    for doc_id, data in (("Document01", mtom), ("Document02", inline)):
        assert slots[doc_id]["hash"] == [sha1(data)]
        assert slots[doc_id]["size"] == [str(len(data))]
        assert slots[doc_id]["repositoryUniqueId"] == [OURS]
    found = rows(engine)
    by_uid = {row.unique_id: row for row in found}
    assert set(by_uid) == {samples.unique_id_of(samples.find(sent, d)) for d in ("Document01", "Document02")}
    for doc_id, data in (("Document01", mtom), ("Document02", inline)):
        row = by_uid[samples.unique_id_of(samples.find(sent, doc_id))]
        assert (row.repository_unique_id, row.size, row.hash, row.status) == (OURS, len(data), sha1(data), "available")
        assert row.mime_type == "text/xml" and row.registered_at is not None
        assert stored_bytes(store, row.storage_key) == data
    assert blob_keys(store) == {row.storage_key for row in found}
    with engine.connect() as conn:
        registered = {r.unique_id: r for r in conn.execute(sa.select(objects).where(objects.c.kind == "document"))}
    assert {uid: (r.hash, r.size, r.repository_unique_id) for uid, r in registered.items()} == {
        uid: (row.hash, row.size, OURS) for uid, row in by_uid.items()
    }
    assert samples.find(request, "Document01").find("{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}Slot") is not None
    assert request.find("{urn:ihe:iti:xds-b:2007}Document") is not None, "the caller's request is not consumed"


def test_missing_hash_size_and_repository_id_are_added_in_ebrim_order(
    repository: Repository, registry: Recorder, tmp_path: Path, pid: str
) -> None:
    submit, contents, parts = two_documents(pid, tmp_path, omit=("hash", "size", "repositoryUniqueId"))
    assert entry_slots(submit)["Document01"].keys().isdisjoint({"hash", "size", "repositoryUniqueId"})
    answer = repository.provide(provide_request(submit, contents), parts)
    assert status(answer) == "Success"
    [sent] = registry.sent
    assert xml_schema("ebrs-lcm").validate(sent), xml_schema("ebrs-lcm").error_log
    slots = entry_slots(sent)["Document02"]
    assert slots["hash"] == [sha1(b"%PDF-1.4 inline")] and slots["size"] == ["15"]
    assert slots["repositoryUniqueId"] == [OURS]


def test_a_supplied_hash_in_upper_case_matches(repository: Repository, registry: Recorder, pid: str) -> None:
    content = b"upper case hash"
    submit = samples.submission(pid, document={"content": content, "hash": sha1(content).upper()})
    answer = repository.provide(provide_request(submit, {"Document01": content}), [])
    assert status(answer) == "Success"
    assert entry_slots(registry.sent[0])["Document01"]["hash"] == [sha1(content)]


@pytest.mark.parametrize(
    ("document", "what"),
    [
        ({"hash": "0" * 40}, "hash"),
        ({"size": 3}, "size"),
        ({"size": "many"}, "size"),
        ({"repository_unique_id": "1.2.3.4.5"}, "repositoryUniqueId"),
    ],
)
def test_supplied_metadata_that_disagrees_is_refused_and_nothing_is_kept(
    repository: Repository,
    registry: Recorder,
    engine: sa.Engine,
    store: LocalDiskStore,
    tmp_path: Path,
    document: dict[str, Any],
    what: str,
    pid: str,
) -> None:
    content = b"the document"
    submit = samples.submission(pid, document={"content": content, **document})
    attachment = part(tmp_path, "doc1@example.org", content)
    answer = repository.provide(provide_request(submit, {"Document01": attachment}), [attachment])
    assert xml_schema("ebrs-rs").validate(answer)
    assert (status(answer), errors(answer)) == ("Failure", [("XDSRepositoryMetadataError", "Document01")])
    assert what in answer.find(".//{*}RegistryError").get("codeContext")
    assert registry.sent == [] and rows(engine) == [] and blob_keys(store) == set()


def test_a_document_entry_without_a_document_is_xds_missing_document(
    repository: Repository, registry: Recorder, store: LocalDiskStore, pid: str
) -> None:
    submit = samples.submission(pid, documents=2)
    answer = repository.provide(provide_request(submit, {"Document01": samples.CONTENT}), [])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSMissingDocument", "Document02")])
    assert registry.sent == [] and blob_keys(store) == set()


def test_a_document_without_a_document_entry_is_xds_missing_document_metadata(
    repository: Repository, registry: Recorder, pid: str
) -> None:
    submit = samples.submission(pid)
    contents = {"Document01": samples.CONTENT, "Document09": b"stray"}
    answer = repository.provide(provide_request(submit, contents), [])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSMissingDocumentMetadata", "Document09")])
    assert registry.sent == []


def test_an_xop_include_naming_no_mime_part_is_a_missing_document(
    repository: Repository, tmp_path: Path, pid: str
) -> None:
    attachment = part(tmp_path, "present@example.org", samples.CONTENT)
    absent = Attachment("absent@example.org", "text/xml", data=samples.CONTENT)
    answer = repository.provide(provide_request(samples.submission(pid), {"Document01": absent}), [attachment])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSMissingDocument", "Document01")])


def test_an_url_encoded_cid_href_finds_its_bare_content_id(
    repository: Repository, registry: Recorder, tmp_path: Path, pid: str
) -> None:
    attachment = part(tmp_path, "doc 1/ä@example.org", samples.CONTENT)
    request = provide_request(samples.submission(pid), {"Document01": attachment})
    include = request.find(".//{http://www.w3.org/2004/08/xop/include}Include")
    assert include.get("href") == "cid:doc%201%2F%C3%A4@example.org"
    assert status(repository.provide(request, [attachment])) == "Success"


def test_the_same_unique_id_twice_in_one_submission(repository: Repository, registry: Recorder, pid: str) -> None:
    uid = samples.new_oid()
    submit = samples.submission(pid, documents=2, document={"unique_id": uid})
    contents = {"Document01": samples.CONTENT, "Document02": samples.CONTENT}
    answer = repository.provide(provide_request(submit, contents), [])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSRepositoryDuplicateUniqueIdInMessage", uid)])
    assert registry.sent == []


def test_content_that_is_neither_xop_nor_base64(repository: Repository, pid: str) -> None:
    request = provide_request(samples.submission(pid), {"Document01": b""})
    request.find("{urn:ihe:iti:xds-b:2007}Document").text = "not base64 !!"
    answer = repository.provide(request, [])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSRepositoryError", "Document01")])


def test_every_problem_of_a_submission_is_listed(repository: Repository, pid: str) -> None:
    submit = samples.submission(pid, documents=2, document={"omit": ("mimeType",)})
    answer = repository.provide(provide_request(submit, {"Document01": samples.CONTENT, "Document07": b"x"}), [])
    assert status(answer) == "Failure"
    assert sorted(errors(answer)) == [
        ("XDSMissingDocument", "Document02"),
        ("XDSMissingDocumentMetadata", "Document07"),
        ("XDSRepositoryMetadataError", "Document01"),
        ("XDSRepositoryMetadataError", "Document02"),
    ]


def test_another_payload_is_refused(repository: Repository, pid: str) -> None:
    answer = repository.provide(samples.submission(pid), [])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSRepositoryError", "")])


def test_a_registry_refusal_is_returned_unchanged_and_the_documents_are_rolled_back(
    repository: Repository, registry: Recorder, engine: sa.Engine, store: LocalDiskStore, tmp_path: Path
) -> None:
    unknown = samples.patient_cx("nobody")
    submit, contents, parts = two_documents(unknown, tmp_path)
    answer = repository.provide(provide_request(submit, contents), parts)
    assert len(registry.sent) == 1 and answer is registry.answers[0]
    assert status(answer) == "Failure" and "XDSUnknownPatientId" in {code for code, _ in errors(answer)}
    assert rows(engine) == [] and blob_keys(store) == set()
    assert parts[0].read(), "the MIME part itself is left to its owner"


def test_a_refusal_of_a_stand_in_registry_is_returned_as_is(engine: sa.Engine, store: LocalDiskStore, pid: str) -> None:
    registry = Recorder(refusing_registry("XDSRegistryOutOfResources", "registry full"))
    repository = Repository(engine, XdsConfig(repository_unique_id=OURS), store, registry)
    answer = repository.provide(provide_request(samples.submission(pid), {"Document01": samples.CONTENT}), [])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSRegistryOutOfResources", "Document01")])
    assert answer.find(".//{*}RegistryError").get("codeContext") == "registry full"
    assert rows(engine) == [] and blob_keys(store) == set()


@pytest.mark.parametrize(
    ("failure", "code"),
    [(ConnectionRefusedError("refused"), "XDSRegistryNotAvailable"), (RuntimeError("bug"), "XDSRegistryError")],
)
def test_a_registry_that_cannot_answer_rolls_back(
    engine: sa.Engine, store: LocalDiskStore, failure: Exception, code: str, pid: str
) -> None:
    def register(submit: Any) -> Any:
        raise failure

    repository = Repository(engine, XdsConfig(repository_unique_id=OURS), store, register)
    answer = repository.provide(provide_request(samples.submission(pid), {"Document01": samples.CONTENT}), [])
    assert (status(answer), [c for c, _ in errors(answer)]) == ("Failure", [code])
    assert rows(engine) == [] and blob_keys(store) == set()


def test_a_registry_answering_garbage_rolls_back(engine: sa.Engine, store: LocalDiskStore, pid: str) -> None:
    repository = Repository(engine, XdsConfig(repository_unique_id=OURS), store, lambda submit: submit)
    answer = repository.provide(provide_request(samples.submission(pid), {"Document01": samples.CONTENT}), [])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSRegistryError", "")])
    assert rows(engine) == [] and blob_keys(store) == set()


def test_an_identical_resubmission_is_accepted_and_keeps_one_copy(
    repository: Repository, registry: Recorder, engine: sa.Engine, store: LocalDiskStore, pid: str
) -> None:
    uid = samples.new_oid()
    for _ in range(2):  # the same document in a new submission set (ITI TF-3 4.1.3.1: same uniqueId, same hash)
        submit = samples.submission(pid, document={"unique_id": uid})
        answer = repository.provide(provide_request(submit, {"Document01": samples.CONTENT}), [])
        assert status(answer) == "Success"
    assert len(registry.sent) == 2, "the registry decides about the resubmission (ITI-42)"
    [row] = rows(engine)
    assert (row.unique_id, row.status) == (uid, "available")
    assert blob_keys(store) == {row.storage_key}


def test_the_same_unique_id_with_other_content_is_xds_non_identical_hash(
    repository: Repository, registry: Recorder, engine: sa.Engine, store: LocalDiskStore, pid: str
) -> None:
    uid = samples.new_oid()
    first = samples.submission(pid, document={"unique_id": uid})
    assert status(repository.provide(provide_request(first, {"Document01": samples.CONTENT}), [])) == "Success"
    before = rows(engine)
    other = samples.submission(pid, document={"unique_id": uid, "content": b"other"})
    answer = repository.provide(provide_request(other, {"Document01": b"other"}), [])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSNonIdenticalHash", uid)])
    assert uid in answer.find(".//{*}RegistryError").get("codeContext")
    assert len(registry.sent) == 1
    assert rows(engine) == before and blob_keys(store) == {before[0].storage_key}
    assert stored_bytes(store, before[0].storage_key) == samples.CONTENT


def test_a_submission_without_documents_goes_to_the_registry(
    repository: Repository, registry: Recorder, engine: sa.Engine, pid: str
) -> None:
    answer = repository.provide(provide_request(samples.submission(pid, documents=0, folder=True), {}), [])
    assert (status(answer), errors(answer)) == ("Success", [])
    assert len(registry.sent) == 1 and rows(engine) == []


class FullDisk(LocalDiskStore):
    """A store whose disk fills up after ``room`` documents."""

    room = 1

    def put(self, key: str, stream: BinaryIO) -> StoredBlob:
        if self.room == 0:
            raise StorageError("disk full") from OSError(errno.ENOSPC, "No space left on device")
        self.room -= 1
        return super().put(key, stream)


def test_a_full_store_is_out_of_resources_and_keeps_nothing(
    engine: sa.Engine, registry: Recorder, tmp_path: Path, pid: str
) -> None:
    store = FullDisk(tmp_path / "documents")
    repository = Repository(engine, XdsConfig(repository_unique_id=OURS), store, registry)
    submit, contents, parts = two_documents(pid, tmp_path)
    answer = repository.provide(provide_request(submit, contents), parts)
    assert (status(answer), errors(answer)) == ("Failure", [("XDSRepositoryOutOfResources", "Document02")])
    assert registry.sent == [] and blob_keys(store) == set()


def test_a_database_failure_is_a_repository_error_and_keeps_nothing(
    repository: Repository, registry: Recorder, engine: sa.Engine, store: LocalDiskStore, pid: str
) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE esb_xds_documents"))
    answer = repository.provide(provide_request(samples.submission(pid), {"Document01": samples.CONTENT}), [])
    assert (status(answer), errors(answer)) == ("Failure", [("XDSRepositoryError", "")])
    assert registry.sent == [] and blob_keys(store) == set()
