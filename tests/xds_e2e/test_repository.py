"""ITI-41 Provide and Register (MTOM) and ITI-43 Retrieve over HTTP, driven by zeep, against the shipped routes."""

from __future__ import annotations

import hashlib
from typing import Any

from profiles.xds import ebxml
from tests.xds import samples
from tests.xds_e2e.harness import RunningEngine
from tests.xds_e2e.zeep_xds import (
    REPOSITORY,
    XdsClient,
    document_unique_ids,
    errors,
    failed,
    find_documents,
    identifier,
    of_kind,
    ok,
    pairs,
    slot,
    status,
    unique_ids,
)

#: bytes an MTOM reader must not mangle: every octet, CRLFs and something that looks like a boundary
PDF = b"%PDF-1.4\r\n" + bytes(range(256)) * 8 + b"\r\n--uuid:not-a-boundary\r\n%%EOF"
REPORT = "<report>报告 – ok</report>".encode()


def entries_of(client: XdsClient, pid: str) -> list[Any]:
    return of_kind(find_documents(client, pid), "ExtrinsicObject")


def test_provide_and_register_stores_then_retrieve_returns_same_bytes(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    before = xds.counts()
    # no hash, size or repositoryUniqueId: the repository computes and sets them (ITI TF-2b 3.41.4.1.3)
    submit = samples.submission(pid, documents=2, document={"omit": ("hash", "size", "repositoryUniqueId")})
    entries = {e.get("id"): e for e in submit.iter(ebxml.q("rim", "ExtrinsicObject"))}
    entries["Document01"].set("mimeType", "application/pdf")
    pdf_uid, report_uid = unique_ids(submit)

    ok(client.provide(submit, {"Document01": PDF, "Document02": REPORT}))
    transport = client.repository_transport
    assert transport.last_status == 200
    assert [part.data for part in transport.sent] == [PDF, REPORT]  # zeep sent both as MTOM parts
    assert xds.spooled() == []  # the received parts are in the store now, not left in the spool
    after = xds.counts()
    # SubmissionSet + 2 DocumentEntries + 2 HasMember
    assert (after.objects - before.objects, after.documents - before.documents, after.files - before.files) == (5, 2, 2)

    found = {identifier(e, ebxml.DE_UNIQUE_ID): e for e in entries_of(client, pid)}
    assert sorted(found) == sorted([pdf_uid, report_uid])
    for uid, content, mime in ((pdf_uid, PDF, "application/pdf"), (report_uid, REPORT, "text/xml")):
        entry = found[uid]
        assert slot(entry, "hash") == [hashlib.sha1(content).hexdigest()]
        assert slot(entry, "size") == [str(len(content))]
        assert slot(entry, "repositoryUniqueId") == [REPOSITORY]
        assert (entry.get("mimeType"), entry.get("status")) == (mime, ebxml.APPROVED)
        assert identifier(entry, ebxml.DE_PATIENT_ID) == pid

    answer = client.retrieve(*pairs(report_uid, pdf_uid))
    assert (status(answer), errors(answer)) == ("Success", [])
    assert transport.last_status == 200
    assert transport.last_content_type.startswith("multipart/related")  # the documents came back MTOM
    assert 'type="application/xop+xml"' in transport.last_content_type
    got = [(d.RepositoryUniqueId, d.DocumentUniqueId, d.mimeType, d.Document) for d in answer.DocumentResponse]
    assert got == [(REPOSITORY, report_uid, "text/xml", REPORT), (REPOSITORY, pdf_uid, "application/pdf", PDF)]
    # the reply streamed the stored files: they are still there for the next consumer
    assert xds.counts() == after
    assert [d.Document for d in client.retrieve(*pairs(pdf_uid)).DocumentResponse] == [PDF]


def test_retrieve_partial_success_unknown_repository_and_failure(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    submit = samples.submission(pid, document={"content": REPORT})
    ok(client.provide(submit, {"Document01": REPORT}))
    [uid] = unique_ids(submit)
    unknown = samples.new_oid()

    partial = client.retrieve(*pairs(uid, unknown))
    assert status(partial) == "PartialSuccess"
    assert errors(partial) == [("XDSDocumentUniqueIdError", unknown)]
    assert [(d.DocumentUniqueId, d.Document) for d in partial.DocumentResponse] == [(uid, REPORT)]
    severities = {e.severity for e in partial.RegistryResponse.RegistryErrorList.RegistryError}
    assert severities == {ebxml.SEVERITY_ERROR}

    elsewhere = "1.2.3.4.5.6.7"
    other = client.retrieve(*pairs(uid, repository=elsewhere))
    assert failed(other) == [("XDSUnknownRepositoryId", elsewhere)]
    assert other.DocumentResponse == []

    mixed = client.retrieve((elsewhere, uid), (REPOSITORY, uid))
    assert status(mixed) == "PartialSuccess" and errors(mixed) == [("XDSUnknownRepositoryId", elsewhere)]
    assert [d.Document for d in mixed.DocumentResponse] == [REPORT]

    second = samples.new_oid()
    none = client.retrieve(*pairs(unknown, second))
    assert failed(none) == [("XDSDocumentUniqueIdError", unknown), ("XDSDocumentUniqueIdError", second)]
    assert none.DocumentResponse == []


def test_provide_for_an_unknown_patient_is_refused_and_rolled_back(xds: RunningEngine, client: XdsClient) -> None:
    nobody = samples.patient_cx("nobody-" + samples.new_oid()[-8:])
    submit = samples.submission(nobody, document={"content": REPORT})
    [uid] = unique_ids(submit)
    before = xds.counts()

    answer = client.provide(submit, {"Document01": REPORT})
    assert failed(answer) == [("XDSUnknownPatientId", "SubmissionSet01")]
    assert xds.counts() == before  # no registry object, no repository row, no stored file
    retrieved = client.retrieve(*pairs(uid))
    assert failed(retrieved) == [("XDSDocumentUniqueIdError", uid)]
    assert xds.spooled() == []

    # nothing of the refused submission is left to collide with: the source resends it for the right patient
    pid = xds.patient()
    ok(client.provide(samples.submission(pid, document={"content": REPORT, "unique_id": uid}), {"Document01": REPORT}))
    assert [d.Document for d in client.retrieve(*pairs(uid)).DocumentResponse] == [REPORT]


def test_a_known_unique_id_with_other_content_is_refused(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    uid = samples.new_oid()
    ok(client.provide(samples.submission(pid, document={"content": REPORT, "unique_id": uid}), {"Document01": REPORT}))
    before = xds.counts()
    other = samples.submission(pid, document={"content": PDF, "unique_id": uid})
    assert [code for code, _ in failed(client.provide(other, {"Document01": PDF}))] == ["XDSNonIdenticalHash"]
    assert xds.counts() == before
    assert [d.Document for d in client.retrieve(*pairs(uid)).DocumentResponse] == [REPORT]  # the first one stays


def test_provide_checks_the_sources_hash_and_size(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    submit = samples.submission(pid, document={"content": b"something else"})
    before = xds.counts()
    answer = client.provide(submit, {"Document01": REPORT})
    assert failed(answer) == [("XDSRepositoryMetadataError", "Document01")] * 2  # hash, then size
    assert xds.counts() == before
    assert document_unique_ids(find_documents(client, pid)) == []
