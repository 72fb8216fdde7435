"""ITI-42 Register Document Set-b straight to /xds/registry, driven by zeep: success and every refusal kind.

A refused submission is all or nothing: each refusal below also checks that the
registry holds not one object more than before.
"""

from __future__ import annotations

from profiles.xds import ebxml
from tests.xds import samples
from tests.xds_e2e.harness import RunningEngine
from tests.xds_e2e.zeep_xds import (
    ANY_STATUS,
    XdsClient,
    document_unique_ids,
    failed,
    identifier,
    listed,
    of_kind,
    ok,
    quoted,
    slot,
    unique_ids,
)


def refused(xds: RunningEngine, client: XdsClient, submit: object) -> list[tuple[str, str]]:
    before = xds.counts()
    found = failed(client.register(submit))
    assert xds.counts() == before, "a refused submission changed the registry"
    return found


def documents_of(client: XdsClient, pid: str) -> list[str]:
    params = {"$XDSDocumentEntryPatientId": quoted(pid), "$XDSDocumentEntryStatus": ANY_STATUS}
    return document_unique_ids(ok(client.query("FindDocuments", params)))


def test_register_success_is_found_by_stored_queries(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    submit = samples.submission(pid, documents=2, folder=True, document={"reference_ids": ["ACC-1^^^&1.2.3&ISO"]})
    before = xds.counts()
    ok(client.register(submit))
    assert client.registry_transport.last_status == 200
    assert not client.registry_transport.last_content_type.startswith("multipart/")  # plain SOAP in, plain out
    # SubmissionSet, 2 documents, Folder; SS->doc x2, SS->Folder, Folder->doc x2 and their SS HasMember x2
    assert xds.counts().objects - before.objects == 4 + 7
    assert documents_of(client, pid) == sorted(unique_ids(submit))

    [ss_uid] = [samples.unique_id_of(samples.find(submit, "SubmissionSet01"))]
    answer = ok(client.query("GetSubmissionSetAndContents", {"$XDSSubmissionSetUniqueId": quoted(ss_uid)}))
    [package] = [p for p in of_kind(answer, "RegistryPackage") if slot(p, "submissionTime") is not None]
    assert identifier(package, ebxml.SS_PATIENT_ID) == pid
    assert package.get("status") == ebxml.APPROVED and package.get("id", "").startswith("urn:uuid:")


def test_unknown_patient_is_refused(xds: RunningEngine, client: XdsClient) -> None:
    unknown = samples.patient_cx("unknown-person")
    assert refused(xds, client, samples.submission(unknown)) == [("XDSUnknownPatientId", "SubmissionSet01")]
    # a known person ID under another assigning authority is not an affinity-domain ID either
    person = xds.patient().split("^")[0]
    elsewhere = samples.patient_cx(person, master_oid="1.2.3.4.99")
    assert refused(xds, client, samples.submission(elsewhere)) == [("XDSUnknownPatientId", "SubmissionSet01")]


def test_duplicate_unique_ids(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    first = samples.submission(pid)
    ok(client.register(first))
    [doc_uid] = unique_ids(first)
    ss_uid = samples.unique_id_of(samples.find(first, "SubmissionSet01"))

    # the same SubmissionSet uniqueId again
    again = samples.submission(pid, ss={"unique_id": ss_uid})
    assert refused(xds, client, again) == [("XDSDuplicateUniqueIdInRegistry", "SubmissionSet01")]
    # the same document uniqueId with other content (hash and size differ)
    other = samples.submission(pid, document={"unique_id": doc_uid, "content": b"another document"})
    assert refused(xds, client, other) == [("XDSNonIdenticalHash", "Document01"), ("XDSNonIdenticalSize", "Document01")]
    # twice in one message
    twice = samples.submission(pid, documents=2, document={"unique_id": samples.new_oid()})
    assert refused(xds, client, twice) == [("XDSRegistryDuplicateUniqueIdInMessage", "Document02")]
    assert documents_of(client, pid) == [doc_uid]


def test_patient_id_mismatch(xds: RunningEngine, client: XdsClient) -> None:
    pid, other = xds.patient(), xds.patient()
    submit = samples.submission(pid)
    samples.find(submit, "Document01").getparent().replace(
        samples.find(submit, "Document01"), samples.document_entry(other, id="Document01")
    )
    assert refused(xds, client, submit) == [("XDSPatientIdDoesNotMatch", "Document01")]
    assert documents_of(client, pid) == [] and documents_of(client, other) == []


def test_metadata_errors(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    no_class_code = samples.submission(pid, document={"omit": ("classCode",)})
    assert refused(xds, client, no_class_code) == [("XDSRegistryMetadataError", "Document01")]
    bad_time = samples.submission(pid, document={"creation_time": "2024-01-02"})
    assert refused(xds, client, bad_time) == [("XDSRegistryMetadataError", "Document01")]
    orphan = samples.request(samples.submission_set(pid), samples.document_entry(pid))  # no HasMember
    assert refused(xds, client, orphan) == [("XDSRegistryMetadataError", "Document01")]
    assert documents_of(client, pid) == []


def test_a_valid_submission_after_refusals_still_registers(xds: RunningEngine, client: XdsClient) -> None:
    """The refusals above rolled back cleanly: the next submission of the same objects goes through."""
    pid = xds.patient()
    uid = samples.new_oid()
    bad = samples.submission(pid, document={"unique_id": uid, "omit": ("typeCode",)})
    assert refused(xds, client, bad) == [("XDSRegistryMetadataError", "Document01")]
    ok(client.register(samples.submission(pid, document={"unique_id": uid})))
    params = {"$XDSDocumentEntryUniqueId": listed(uid)}
    [entry] = of_kind(ok(client.query("GetDocuments", params)), "ExtrinsicObject")
    assert identifier(entry, ebxml.DE_PATIENT_ID) == pid
