"""ITI-42 refusals: the exact XDS error code and location of each problem, all in one answer, nothing written."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from profiles.xds import ebxml
from profiles.xds.registry.register import Registry
from tests.xds import registry_support, samples
from tests.xds.registry_support import (
    ok,
    refused,
    snapshot,
)

reg_engine, registry, pid = registry_support.reg_engine, registry_support.registry, registry_support.pid

pytestmark = pytest.mark.usefixtures("db_url")
META = "XDSRegistryMetadataError"


#: one bad part per case; each must be refused alone, at Document01
DOCUMENT_CASES: list[dict[str, Any]] = [
    {"omit": ["classCode"]},
    {"omit": ["typeCode"]},
    {"omit": ["formatCode"]},
    {"omit": ["confidentialityCode"]},
    {"omit": ["healthcareFacilityTypeCode"]},
    {"omit": ["practiceSettingCode"]},
    {"omit": ["creationTime"]},
    {"omit": ["hash"]},
    {"omit": ["size"]},
    {"omit": ["languageCode"]},
    {"omit": ["repositoryUniqueId"]},
    {"omit": ["sourcePatientId"]},
    {"omit": ["patientId"]},
    {"omit": ["uniqueId"]},
    {"omit": ["mimeType"]},
    {"creation_time": "2024-01-02"},
    {"creation_time": "20241302"},
    {"service_start_time": "2024010203040"},
    {"hash": "abc"},
    {"size": "-1"},
    {"size": "12k"},
    {"mime_type": "textxml"},
    {"language_code": "en_US"},
    {"unique_id": "not-an-oid"},
    {"unique_id": "1.2.3^extension-longer-than-16"},
    {"repository_unique_id": "1.2.x"},
    {"source_patient_id": "H100"},
    {"class_code": ("", "2.16.840.1.113883.6.1", "empty code")},
    {"confidentiality_codes": ()},
    {"extra_slots": {"creationTime": ["20240101"]}},
]
SUBMISSION_SET_CASES: list[dict[str, Any]] = [
    {"omit": ["submissionTime"]},
    {"omit": ["contentTypeCode"]},
    {"omit": ["sourceId"]},
    {"omit": ["uniqueId"]},
    {"submission_time": "yesterday"},
    {"source_id": "urn:oid:1.2.3"},
]
FOLDER_CASES: list[dict[str, Any]] = [{"omit": ["codeList"]}, {"title": None}, {"unique_id": "1.2.3.04"}]


def test_document_metadata_errors(registry: Registry, pid: str) -> None:
    for case in DOCUMENT_CASES:
        assert refused(registry, samples.submission(pid, document=case)) == [(META, "Document01")], case


def test_submission_set_metadata_errors(registry: Registry, pid: str) -> None:
    for case in SUBMISSION_SET_CASES:
        assert refused(registry, samples.submission(pid, ss=case)) == [(META, "SubmissionSet01")], case


def test_folder_metadata_errors(registry: Registry, pid: str) -> None:
    for case in FOLDER_CASES:
        assert refused(registry, samples.submission(pid, folder=True, folder_args=case)) == [(META, "Folder01")], case


def test_on_demand_entry_has_no_hash_or_size(registry: Registry, pid: str) -> None:
    doc = samples.document_entry(pid, on_demand=True, extra_slots={"hash": ["a" * 40], "size": ["1"]})
    member = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", "Document01", status="Original")
    assert refused(registry, samples.request(samples.submission_set(pid), doc, member)) == [(META, "Document01")] * 2


def test_every_problem_in_one_answer(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    before = snapshot(reg_engine)
    request = samples.submission(
        pid,
        documents=2,
        document={"omit": ["classCode"], "hash": "xyz"},
        ss={"omit": ["contentTypeCode"]},
    )
    assert refused(registry, request) == [
        (META, "SubmissionSet01"),
        (META, "Document01"),
        (META, "Document01"),
        (META, "Document02"),
        (META, "Document02"),
    ]
    assert snapshot(reg_engine) == before


def test_structure_errors(registry: Registry, pid: str) -> None:
    doc = samples.document_entry(pid)
    # no SubmissionSet; the document is then no member of one
    assert refused(registry, samples.request(doc)) == [(META, ""), (META, "Document01")]
    # two SubmissionSets
    two = samples.submission(pid, extra=[samples.submission_set(pid, id="SubmissionSet02")])
    assert (META, "") in refused(registry, two)
    # a document that is not a member of the SubmissionSet
    assert refused(registry, samples.request(samples.submission_set(pid), doc)) == [(META, "Document01")]
    # the SubmissionSet HasMember of a new document says Original
    member = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", "Document01", id="a1")
    assert refused(registry, samples.request(samples.submission_set(pid), doc, member)) == [(META, "a1")]
    # an unknown association type
    odd = samples.association("urn:example:Likes", "Document01", "Document01", id="a2")
    assert refused(registry, samples.submission(pid, associations=[odd])) == [(META, "a2")]
    # a RegistryPackage that is neither SubmissionSet nor Folder
    package = samples.folder(pid, id="Pkg", omit=["classification"])
    assert refused(registry, samples.submission(pid, extra=[package])) == [(META, "Pkg")]


def test_request_that_is_not_valid_ebrs(registry: Registry, pid: str) -> None:
    request = samples.submission(pid)
    samples.find(request, "Document01").find(ebxml.q("rim", "Slot")).attrib.pop("name")
    assert refused(registry, request) == [(META, "")]
    assert {error for error in refused(registry, samples.slot("not", "a request"))} == {(META, "")}


def test_ids(registry: Registry, pid: str) -> None:
    taken = samples.new_uuid()
    ok(registry, samples.submission(pid, doc_ids=[taken]))
    assert refused(registry, samples.submission(pid, doc_ids=[taken])) == [(META, taken)]
    bad = "urn:uuid:not-a-uuid"
    assert refused(registry, samples.submission(pid, doc_ids=[bad])) == [(META, bad)]
    request = samples.submission(pid)
    samples.find(request, "Document01").set("lid", samples.new_uuid())
    assert refused(registry, request) == [(META, "Document01")]
    twice = samples.submission(pid, extra=[samples.folder(pid, id="Document01")])
    assert (META, "Document01") in refused(registry, twice)


def test_unknown_patient(registry: Registry, reg_engine: sa.Engine) -> None:
    before = snapshot(reg_engine)
    unknown = samples.patient_cx("nobody")
    assert refused(registry, samples.submission(unknown)) == [("XDSUnknownPatientId", "SubmissionSet01")]
    other_domain = samples.add_patient(reg_engine, master_oid="1.2.3.4.5")
    assert refused(registry, samples.submission(other_domain)) == [("XDSUnknownPatientId", "SubmissionSet01")]
    retired = samples.add_patient(reg_engine, status="retired")
    assert refused(registry, samples.submission(retired)) == [("XDSUnknownPatientId", "SubmissionSet01")]
    assert snapshot(reg_engine) == before


def test_merged_patient_is_refused(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    survivor = pid.split("^")[0]
    merged = samples.add_patient(reg_engine, status="merged", merged_into=survivor)
    assert refused(registry, samples.submission(merged)) == [("XDSUnknownPatientId", "SubmissionSet01")]


def test_patient_ids_must_match(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    other = samples.add_patient(reg_engine)
    doc = samples.document_entry(other, id="Document02")
    member = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", "Document02", status="Original")
    request = samples.submission(pid, folder=True, extra=[doc], associations=[member])
    assert refused(registry, request) == [("XDSPatientIdDoesNotMatch", "Document02")]
    folder = samples.submission(pid, folder=True)
    samples.find(folder, "Folder01").getparent().replace(
        samples.find(folder, "Folder01"), samples.folder(other, id="Folder01")
    )
    assert refused(registry, folder) == [("XDSPatientIdDoesNotMatch", "Folder01")]


def test_duplicate_unique_ids(registry: Registry, pid: str) -> None:
    ss_uid, folder_uid, doc_uid = samples.new_oid(), samples.new_oid(), samples.new_oid()
    ok(
        registry,
        samples.submission(
            pid,
            folder=True,
            ss={"unique_id": ss_uid},
            folder_args={"unique_id": folder_uid},
            document={"unique_id": doc_uid},
        ),
    )
    assert refused(registry, samples.submission(pid, ss={"unique_id": ss_uid})) == [
        ("XDSDuplicateUniqueIdInRegistry", "SubmissionSet01")
    ]
    assert refused(registry, samples.submission(pid, folder=True, folder_args={"unique_id": folder_uid})) == [
        ("XDSDuplicateUniqueIdInRegistry", "Folder01")
    ]
    other_content = {"unique_id": doc_uid, "content": b"other content"}
    assert refused(registry, samples.submission(pid, document=other_content)) == [
        ("XDSNonIdenticalHash", "Document01"),
        ("XDSNonIdenticalSize", "Document01"),
    ]
    same_hash_other_size = {"unique_id": doc_uid, "size": 999}
    assert refused(registry, samples.submission(pid, document=same_hash_other_size)) == [
        ("XDSNonIdenticalSize", "Document01")
    ]
    same_size_other_hash = {"unique_id": doc_uid, "hash": "0" * 40}
    assert refused(registry, samples.submission(pid, document=same_size_other_hash)) == [
        ("XDSNonIdenticalHash", "Document01")
    ]
    in_message = samples.new_oid()
    assert refused(registry, samples.submission(pid, documents=2, document={"unique_id": in_message})) == [
        ("XDSRegistryDuplicateUniqueIdInMessage", "Document02")
    ]


def test_unresolved_references(registry: Registry, pid: str) -> None:
    nowhere = samples.new_uuid()
    rplc = samples.association(ebxml.RPLC, "Document01", nowhere, id="rplc")
    assert refused(registry, samples.submission(pid, associations=[rplc])) == [("UnresolvedReferenceException", "rplc")]
    symbolic = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", "Document09", id="m9", status="Original")
    assert refused(registry, samples.submission(pid, associations=[symbolic])) == [
        ("UnresolvedReferenceException", "m9")
    ]


def test_failure_leaves_tables_unchanged(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    """A valid replacement and folder in a submission with one bad document: nothing is written or deprecated."""
    uid = samples.new_oid()
    ok(registry, samples.submission(pid, folder=True, document={"unique_id": uid}))
    with reg_engine.connect() as conn:
        original = conn.execute(sa.text("SELECT id FROM esb_xds_objects WHERE unique_id = :u"), {"u": uid}).scalar()
    before = snapshot(reg_engine)
    rplc = samples.association(ebxml.RPLC, "Document01", str(original))
    bad = samples.document_entry(pid, id="Document02", omit=["typeCode"])
    member = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", "Document02", status="Original")
    request = samples.submission(pid, folder=True, extra=[bad], associations=[rplc, member])
    assert refused(registry, request) == [(META, "Document02")]
    assert snapshot(reg_engine) == before
