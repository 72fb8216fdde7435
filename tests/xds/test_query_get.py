"""ITI-18 Get queries (GetDocuments ... GetRelatedDocuments) and request-level refusals."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from esb.journal import database
from esb.schemas import xml_schema
from profiles.xds import ebxml
from profiles.xds.config import XdsConfig
from profiles.xds.registry.query import StoredQueries
from tests.xds import samples
from tests.xds.test_query_support import (
    DEPRECATED,
    World,
    adhoc_query,
    code,
    codes_of,
    entries,
    errors_of,
    find_documents,
    ids_of,
    listed,
    make_world,
    patient_of,
    quote,
    status_of,
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    yield from make_world(db_url)


def assoc_ids(response: object, kind: str = ebxml.HAS_MEMBER) -> set[tuple[str, str]]:
    return {
        (a.get("sourceObject"), a.get("targetObject"))
        for a in entries(response, "Association")
        if a.get("associationType") == kind
    }


def test_get_documents_by_uuid_and_unique_id(world: World) -> None:
    pid = world.patient()
    request = samples.submission(pid, documents=2)
    found = world.register(request)
    doc1, doc2 = found["Document01"], found["Document02"]
    uid1 = samples.unique_id_of(samples.find(request, "Document01"))
    world.registry.deprecate(doc2, actor="test")
    response = world.ok("GetDocuments", {"$XDSDocumentEntryEntryUUID": listed(doc1, doc2, "urn:uuid:unknown")})
    statuses = {e.get("id"): e.get("status") for e in entries(response, "ExtrinsicObject")}
    assert statuses == {doc1: ebxml.APPROVED, doc2: DEPRECATED}  # any status
    by_uid = world.ok("GetDocuments", {"$XDSDocumentEntryUniqueId": listed(uid1)}, "ObjectRef")
    assert ids_of(by_uid) == [doc1]
    assert ids_of(world.ok("GetDocuments", {"$XDSDocumentEntryUniqueId": listed("1.2.3.nothing")})) == []
    both = {"$XDSDocumentEntryEntryUUID": listed(doc1), "$XDSDocumentEntryUniqueId": listed(uid1)}
    assert world.failed("GetDocuments", both) == ["XDSStoredQueryParamNumber"]
    assert world.failed("GetDocuments", {"$homeCommunityId": quote("urn:oid:1.2.3")}) == ["XDSStoredQueryMissingParam"]
    with_home = {"$XDSDocumentEntryEntryUUID": listed(doc1), "$homeCommunityId": quote("urn:oid:1.2.3")}
    assert ids_of(world.ok("GetDocuments", with_home)) == [doc1]


def test_get_folders(world: World) -> None:
    pid = world.patient()
    request = samples.submission(pid, folder=True)
    folder = world.register(request)["Folder01"]
    uid = samples.unique_id_of(samples.find(request, "Folder01"))
    assert ids_of(world.ok("GetFolders", {"$XDSFolderEntryUUID": listed(folder)})) == [folder]
    [package] = entries(world.ok("GetFolders", {"$XDSFolderUniqueId": listed(uid)}), "RegistryPackage")
    assert package.get("id") == folder
    assert ids_of(world.ok("GetFolders", {"$XDSFolderEntryUUID": listed("urn:uuid:none")})) == []


def test_get_associations_and_documents_and_associations(world: World) -> None:
    pid = world.patient()
    found = world.register(samples.submission(pid, folder=True))
    ss, doc, folder = found["SubmissionSet01"], found["Document01"], found["Folder01"]
    response = world.ok("GetAssociations", {"$uuid": listed(doc)})
    assert entries(response, "ExtrinsicObject") == []
    assert assoc_ids(response) == {(ss, doc), (folder, doc)}
    of_folder = world.ok("GetAssociations", {"$uuid": listed(folder, "urn:uuid:none")}, "ObjectRef")
    assert len(ids_of(of_folder)) == 2  # SS HasMember Folder, Folder HasMember Document
    response = world.ok("GetDocumentsAndAssociations", {"$XDSDocumentEntryEntryUUID": listed(doc)})
    assert [e.get("id") for e in entries(response, "ExtrinsicObject")] == [doc]
    assert assoc_ids(response) == {(ss, doc), (folder, doc)}
    nothing = {"$XDSDocumentEntryUniqueId": listed("1.2.nothing")}
    assert ids_of(world.ok("GetDocumentsAndAssociations", nothing)) == []


def test_get_submission_sets(world: World) -> None:
    pid = world.patient()
    found = world.register(samples.submission(pid, folder=True))
    ss, doc, folder = found["SubmissionSet01"], found["Document01"], found["Folder01"]
    response = world.ok("GetSubmissionSets", {"$uuid": listed(doc, folder)})
    [package] = entries(response, "RegistryPackage")
    assert package.get("id") == ss
    assert assoc_ids(response) == {(ss, doc), (ss, folder)}  # not the Folder's HasMember of the document
    assert ids_of(world.ok("GetSubmissionSets", {"$uuid": listed("urn:uuid:none")})) == []


def test_get_submission_set_and_contents(world: World) -> None:
    pid = world.patient()
    pdf = samples.FORMAT_CODE
    text = ("urn:ihe:iti:xds:2017:mimeTypeSufficient", "1.3.6.1.4.1.19376.1.2.3", "Text")
    request = samples.submission(pid, documents=2, folder=True)
    objects = request[0]
    objects.replace(samples.find(request, "Document02"), samples.document_entry(pid, id="Document02", format_code=text))
    found = world.register(request)
    ss, doc1, doc2, folder = (found[k] for k in ("SubmissionSet01", "Document01", "Document02", "Folder01"))
    response = world.ok("GetSubmissionSetAndContents", {"$XDSSubmissionSetEntryUUID": quote(ss)})
    assert {e.get("id") for e in entries(response, "ExtrinsicObject")} == {doc1, doc2}
    assert {e.get("id") for e in entries(response, "RegistryPackage")} == {ss, folder}
    links = entries(response, "Association")
    assert len(links) == 7  # SS->doc1, SS->doc2, SS->folder, folder->doc1, folder->doc2, SS->(each folder link)
    # a format filter drops doc2 and every association that would point at it (or at such an association)
    filtered = world.ok(
        "GetSubmissionSetAndContents",
        {"$XDSSubmissionSetEntryUUID": quote(ss), "$XDSDocumentEntryFormatCode": listed(code(pdf))},
    )
    assert {e.get("id") for e in entries(filtered, "ExtrinsicObject")} == {doc1}
    assert (folder, doc2) not in assoc_ids(filtered) and (ss, doc2) not in assoc_ids(filtered)
    assert len(entries(filtered, "Association")) == 4
    present = set(ids_of(filtered))
    for link in entries(filtered, "Association"):
        assert {link.get("sourceObject"), link.get("targetObject")} <= present
    uid = samples.unique_id_of(samples.find(request, "SubmissionSet01"))
    by_uid = world.ok("GetSubmissionSetAndContents", {"$XDSSubmissionSetUniqueId": quote(uid)}, "ObjectRef")
    assert sorted(ids_of(by_uid)) == sorted(ids_of(response))
    on_demand = {"$XDSSubmissionSetEntryUUID": quote(ss), "$XDSDocumentEntryType": listed(ebxml.ON_DEMAND_DOCUMENT)}
    assert entries(world.ok("GetSubmissionSetAndContents", on_demand), "ExtrinsicObject") == []
    assert ids_of(world.ok("GetSubmissionSetAndContents", {"$XDSSubmissionSetUniqueId": quote("1.2.none")})) == []


def test_get_folder_and_contents_and_folders_for_document(world: World) -> None:
    pid = world.patient()
    restricted = ("R", "2.16.840.1.113883.5.25", "Restricted")
    request = samples.submission(pid, documents=2, folder=True)
    objects = request[0]
    replaced = samples.document_entry(pid, id="Document02", confidentiality_codes=[restricted])
    objects.replace(samples.find(request, "Document02"), replaced)
    found = world.register(request)
    lone = world.register(samples.submission(pid))["Document01"]
    doc1, doc2, folder = found["Document01"], found["Document02"], found["Folder01"]
    response = world.ok("GetFolderAndContents", {"$XDSFolderEntryUUID": quote(folder)})
    assert [e.get("id") for e in entries(response, "RegistryPackage")] == [folder]
    assert {e.get("id") for e in entries(response, "ExtrinsicObject")} == {doc1, doc2}
    assert assoc_ids(response) == {(folder, doc1), (folder, doc2)}
    normal = {
        "$XDSFolderEntryUUID": quote(folder),
        "$XDSDocumentEntryConfidentialityCode": listed(code(samples.CONFIDENTIALITY_CODE)),
    }
    filtered = world.ok("GetFolderAndContents", normal)
    assert {e.get("id") for e in entries(filtered, "ExtrinsicObject")} == {doc1}
    assert assoc_ids(filtered) == {(folder, doc1)}
    for_doc = world.ok("GetFoldersForDocument", {"$XDSDocumentEntryEntryUUID": quote(doc2)})
    assert [e.get("id") for e in entries(for_doc, "RegistryPackage")] == [folder]
    assert entries(for_doc, "Association") == []
    assert ids_of(world.ok("GetFoldersForDocument", {"$XDSDocumentEntryEntryUUID": quote(lone)})) == []


def test_get_related_documents(world: World) -> None:
    pid = world.patient()
    original = world.register(samples.submission(pid))["Document01"]
    unrelated = world.register(samples.submission(pid))["Document01"]
    rplc = samples.association(ebxml.RPLC, "Document01", original)
    replacement = world.register(samples.submission(pid, associations=[rplc]))["Document01"]
    params = {"$XDSDocumentEntryEntryUUID": quote(original), "$AssociationTypes": listed(ebxml.RPLC, ebxml.APND)}
    response = world.ok("GetRelatedDocuments", params)
    statuses = {e.get("id"): e.get("status") for e in entries(response, "ExtrinsicObject")}
    assert statuses == {original: DEPRECATED, replacement: ebxml.APPROVED}
    assert assoc_ids(response, ebxml.RPLC) == {(replacement, original)}
    assert entries(response, "Association") and len(entries(response, "Association")) == 1
    # from the other end, by uniqueId
    from_replacement = {"$XDSDocumentEntryEntryUUID": quote(replacement), "$AssociationTypes": listed(ebxml.RPLC)}
    assert sorted(ids_of(world.ok("GetRelatedDocuments", from_replacement, "ObjectRef"))) == sorted(
        [original, replacement, *[a.get("id") for a in entries(response, "Association")]]
    )
    other_types = params | {"$AssociationTypes": listed(ebxml.XFRM, ebxml.SIGNS)}
    assert ids_of(world.ok("GetRelatedDocuments", other_types)) == []
    assert ids_of(world.ok("GetRelatedDocuments", params | {"$XDSDocumentEntryEntryUUID": quote(unrelated)})) == []
    on_demand = params | {"$XDSDocumentEntryType": listed(ebxml.ON_DEMAND_DOCUMENT)}
    assert ids_of(world.ok("GetRelatedDocuments", on_demand)) == []


def test_result_not_single_patient(world: World) -> None:
    first, second = world.patient(), world.patient()
    doc1 = world.register(samples.submission(first))["Document01"]
    doc2 = world.register(samples.submission(second))["Document01"]
    params = {"$XDSDocumentEntryEntryUUID": listed(doc1, doc2)}
    assert world.failed("GetDocuments", params) == ["XDSResultNotSinglePatient"]
    assert world.failed("GetDocuments", params, "ObjectRef") == ["XDSResultNotSinglePatient"]
    # once the EMPI merged them, they are one patient: the answer names the survivor
    world.merge(second, first)
    response = world.ok("GetDocuments", params)
    assert [patient_of(e) for e in entries(response, "ExtrinsicObject")] == [first, first]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda r: r.find(ebxml.q("rim", "AdhocQuery")).set("id", "urn:uuid:00000000-0000-0000-0000-000000000000"),
            "XDSUnknownStoredQuery",
        ),
        (lambda r: r.find(ebxml.q("rim", "AdhocQuery")).attrib.pop("id"), "XDSUnknownStoredQuery"),
        (
            lambda r: r.find(ebxml.q("query", "ResponseOption")).set("returnType", "LeafClassWithRepositoryItem"),
            "XDSRegistryError",
        ),
        (lambda r: r.find(ebxml.q("query", "ResponseOption")).attrib.pop("returnType"), "XDSRegistryError"),
        (lambda r: r.remove(r.find(ebxml.q("query", "ResponseOption"))), "XDSRegistryError"),
        (lambda r: r.remove(r.find(ebxml.q("rim", "AdhocQuery"))), "XDSRegistryError"),
    ],
    ids=["unknown-id", "no-id", "returnType-repository-item", "no-returnType", "no-ResponseOption", "no-AdhocQuery"],
)
def test_request_refusals(world: World, mutate: Callable[[Any], object], expected: str) -> None:
    pid = world.patient()
    world.register(samples.submission(pid))
    request = adhoc_query(
        "FindDocuments", {"$XDSDocumentEntryPatientId": quote(pid), "$XDSDocumentEntryStatus": listed(ebxml.APPROVED)}
    )
    mutate(request)
    response = world.queries().run(request)
    assert xml_schema("ebrs-query").validate(response)
    assert status_of(response) == "Failure"
    assert codes_of(response) == [expected]
    assert ids_of(response) == []


def test_not_an_adhoc_query_request(world: World) -> None:
    response = world.queries().run(samples.request())
    assert (status_of(response), codes_of(response)) == ("Failure", ["XDSRegistryError"])


def test_unknown_parameter_is_a_warning(world: World) -> None:
    pid = world.patient()
    doc = world.register(samples.submission(pid))["Document01"]
    params = {"$XDSDocumentEntryEntryUUID": listed(doc), "$XDSDocumentEntryClassCod": listed("x^^1")}
    response = world.query("GetDocuments", params)
    assert status_of(response) == "Success"
    assert errors_of(response) == [("XDSRegistryError", "Warning")]
    assert ids_of(response) == [doc]


def test_database_failure_is_an_answer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = database.make_engine(f"sqlite:///{tmp_path}/empty.db")  # no registry tables
    queries = StoredQueries(engine, XdsConfig(), samples.MASTER_OID)
    pid = samples.patient_cx("secret-person-42")
    request = adhoc_query("FindDocuments", find_documents(pid))
    with caplog.at_level(logging.DEBUG, logger="profiles.xds.registry.query"):
        response = queries.run(request)
    assert xml_schema("ebrs-query").validate(response), etree.tostring(response)
    assert (status_of(response), codes_of(response)) == ("Failure", ["XDSRegistryError"])
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    # no patient data in logs above DEBUG (the database error text carries the bound values)
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG and "secret-person" in r.getMessage()]
    engine.dispose()


def test_refusals_are_logged_without_patient_data(world: World, caplog: pytest.LogCaptureFixture) -> None:
    pid = samples.patient_cx("secret-person-43")
    with caplog.at_level(logging.INFO, logger="profiles.xds.registry.query"):
        codes = world.failed("FindDocuments", {"$XDSDocumentEntryPatientId": listed(pid, pid)})
    assert sorted(codes) == ["XDSStoredQueryMissingParam", "XDSStoredQueryParamNumber"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("FindDocuments refused" in m for m in messages)
    assert not [m for m in messages if "secret-person" in m]
