"""Every ITI-18 stored query over SOAP, driven by zeep: LeafClass and ObjectRef answers, and refusals.

One registry content for the module, registered through ITI-42 (see ``world``):
patient P has SubmissionSet SS1 (documents D1 with a referenceIdList, D2 with
another classCode, and folder F1 holding both) and SS2 (document D3 appending
D1); patient Q has SS3 with document D4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from profiles.xds import ebxml
from tests.xds import samples
from tests.xds_e2e.harness import RunningEngine
from tests.xds_e2e.zeep_xds import (
    ANY_STATUS,
    APPROVED,
    Param,
    XdsClient,
    associations,
    coded,
    document_unique_ids,
    entry_uuids,
    failed,
    ids,
    listed,
    ok,
    quoted,
    unique_ids,
)

X_RAY: samples.Code = ("18782-3", "2.16.840.1.113883.6.1", "Radiology Study observation")
REFERENCE = "ACC-7^^^&1.2.3.4&ISO^urn:ihe:iti:xds:2013:accession"


@dataclass
class World:
    p: str
    q: str
    uid: dict[str, str]  # D1..D4, SS1..SS3, F1 -> uniqueId
    uuid: dict[str, str]  # same keys -> entryUUID


def replace_entry(submit: Any, pid: str, doc_id: str, **kwargs: Any) -> None:
    old = samples.find(submit, doc_id)
    old.getparent().replace(old, samples.document_entry(pid, id=doc_id, **kwargs))


@pytest.fixture(scope="module")
def world(xds: RunningEngine, client: XdsClient) -> World:
    p, q = xds.patient(), xds.patient()
    ss1 = samples.submission(p, documents=2, folder=True, document={"reference_ids": [REFERENCE]})
    replace_entry(ss1, p, "Document02", class_code=X_RAY)
    ok(client.register(ss1))
    d1, d2 = unique_ids(ss1)
    uuid = entry_uuids(ok(client.query("FindDocuments", {"$XDSDocumentEntryPatientId": quoted(p),
                                                         "$XDSDocumentEntryStatus": APPROVED})))  # fmt: skip
    ss2 = samples.submission(p, associations=[samples.association(ebxml.APND, "Document01", uuid[d1])])
    ok(client.register(ss2))
    ss3 = samples.submission(q)
    ok(client.register(ss3))
    uid = {
        "D1": d1,
        "D2": d2,
        "D3": unique_ids(ss2)[0],
        "D4": unique_ids(ss3)[0],
        "SS1": samples.unique_id_of(samples.find(ss1, "SubmissionSet01")),
        "SS2": samples.unique_id_of(samples.find(ss2, "SubmissionSet01")),
        "SS3": samples.unique_id_of(samples.find(ss3, "SubmissionSet01")),
        "F1": samples.unique_id_of(samples.find(ss1, "Folder01")),
    }
    found = {}
    for pid in (p, q):
        found.update(entry_uuids(ok(client.query("GetAll", all_params(pid)))))
    return World(p, q, uid, {key: found[value] for key, value in uid.items()})


def all_params(pid: str) -> dict[str, str]:
    return {
        "$patientId": quoted(pid),
        "$XDSDocumentEntryStatus": ANY_STATUS,
        "$XDSSubmissionSetStatus": ANY_STATUS,
        "$XDSFolderStatus": ANY_STATUS,
    }


def refs(client: XdsClient, query: str, params: dict[str, Any]) -> set[str]:
    """The ObjectRef answer of a query, as a set of entryUUIDs."""
    answer = ok(client.query(query, params, "ObjectRef"))
    assert ids(answer) == ids(answer, "ObjectRef")
    return set(ids(answer))


def test_find_documents(client: XdsClient, world: World) -> None:
    base = {"$XDSDocumentEntryPatientId": quoted(world.p), "$XDSDocumentEntryStatus": APPROVED}
    leaf = ok(client.query("FindDocuments", base))
    assert document_unique_ids(leaf) == sorted(world.uid[k] for k in ("D1", "D2", "D3"))
    assert refs(client, "FindDocuments", base) == {world.uuid[k] for k in ("D1", "D2", "D3")}
    by_class = {**base, "$XDSDocumentEntryClassCode": listed(f"{X_RAY[0]}^^{X_RAY[1]}")}
    assert document_unique_ids(ok(client.query("FindDocuments", by_class))) == [world.uid["D2"]]
    injection = {**base, "$XDSDocumentEntryAuthorPerson": listed("' OR 1=1 --")}  # a value, not SQL
    assert ids(ok(client.query("FindDocuments", injection))) == []
    assert failed(client.query("FindDocuments", {"$XDSDocumentEntryPatientId": quoted(world.p)})) == [
        ("XDSStoredQueryMissingParam", "$XDSDocumentEntryStatus")
    ]
    assert failed(client.query("FindDocuments", {**base, "$XDSDocumentEntryPatientId": world.p})) == [
        ("XDSRegistryError", "$XDSDocumentEntryPatientId")  # not quoted
    ]


def test_find_documents_by_reference_id(client: XdsClient, world: World) -> None:
    base = {"$XDSDocumentEntryPatientId": quoted(world.p), "$XDSDocumentEntryStatus": APPROVED}
    params = {**base, "$XDSDocumentEntryReferenceIdList": listed(REFERENCE)}
    assert document_unique_ids(ok(client.query("FindDocumentsByReferenceId", params))) == [world.uid["D1"]]
    assert refs(client, "FindDocumentsByReferenceId", params) == {world.uuid["D1"]}
    assert failed(client.query("FindDocumentsByReferenceId", base)) == [
        ("XDSStoredQueryMissingParam", "$XDSDocumentEntryReferenceIdList")
    ]


def test_find_submission_sets(client: XdsClient, world: World) -> None:
    params = {"$XDSSubmissionSetPatientId": quoted(world.p), "$XDSSubmissionSetStatus": APPROVED}
    assert set(ids(ok(client.query("FindSubmissionSets", params)), "RegistryPackage")) == {
        world.uuid["SS1"],
        world.uuid["SS2"],
    }
    assert refs(client, "FindSubmissionSets", params) == {world.uuid["SS1"], world.uuid["SS2"]}
    by_source = {**params, "$XDSSubmissionSetSourceId": listed("1.2.3.4.5.nobody")}
    assert ids(ok(client.query("FindSubmissionSets", by_source))) == []
    assert failed(client.query("FindSubmissionSets", {"$XDSSubmissionSetStatus": APPROVED})) == [
        ("XDSStoredQueryMissingParam", "$XDSSubmissionSetPatientId")
    ]


def test_find_folders(client: XdsClient, world: World) -> None:
    params = {"$XDSFolderPatientId": quoted(world.p), "$XDSFolderStatus": APPROVED}
    assert ids(ok(client.query("FindFolders", params)), "RegistryPackage") == [world.uuid["F1"]]
    assert refs(client, "FindFolders", params) == {world.uuid["F1"]}
    assert ids(ok(client.query("FindFolders", {**params, "$XDSFolderCodeList": f"({coded(X_RAY)})"}))) == []
    two_patients: dict[str, Param] = {**params, "$XDSFolderPatientId": [quoted(world.p), quoted(world.q)]}
    assert failed(client.query("FindFolders", two_patients)) == [("XDSStoredQueryParamNumber", "$XDSFolderPatientId")]


def test_get_all(client: XdsClient, world: World) -> None:
    answer = ok(client.query("GetAll", all_params(world.p)))
    assert document_unique_ids(answer) == sorted(world.uid[k] for k in ("D1", "D2", "D3"))
    assert set(ids(answer, "RegistryPackage")) == {world.uuid[k] for k in ("SS1", "SS2", "F1")}
    assert ("APND", world.uuid["D3"], world.uuid["D1"]) in associations(answer)
    assert refs(client, "GetAll", all_params(world.p)) == set(ids(answer))
    missing = all_params(world.p)
    del missing["$XDSFolderStatus"]
    assert failed(client.query("GetAll", missing)) == [("XDSStoredQueryMissingParam", "$XDSFolderStatus")]


def test_get_documents(client: XdsClient, world: World) -> None:
    by_uuid = {"$XDSDocumentEntryEntryUUID": listed(world.uuid["D1"], world.uuid["D2"])}
    assert document_unique_ids(ok(client.query("GetDocuments", by_uuid))) == sorted([world.uid["D1"], world.uid["D2"]])
    by_uid = {"$XDSDocumentEntryUniqueId": listed(world.uid["D3"])}
    assert refs(client, "GetDocuments", by_uid) == {world.uuid["D3"]}
    assert [c for c, _ in failed(client.query("GetDocuments", {**by_uuid, **by_uid}))] == ["XDSStoredQueryParamNumber"]
    two_patients = {"$XDSDocumentEntryUniqueId": listed(world.uid["D1"], world.uid["D4"])}
    assert [code for code, _ in failed(client.query("GetDocuments", two_patients))] == ["XDSResultNotSinglePatient"]


def test_get_folders(client: XdsClient, world: World) -> None:
    by_uid = {"$XDSFolderUniqueId": listed(world.uid["F1"])}
    assert ids(ok(client.query("GetFolders", by_uid)), "RegistryPackage") == [world.uuid["F1"]]
    assert refs(client, "GetFolders", {"$XDSFolderEntryUUID": listed(world.uuid["F1"])}) == {world.uuid["F1"]}
    assert failed(client.query("GetFolders", {})) == [("XDSStoredQueryMissingParam", "$XDSFolderEntryUUID")]


def test_get_associations(client: XdsClient, world: World) -> None:
    params = {"$uuid": listed(world.uuid["D1"])}
    u = world.uuid
    expected = {("HasMember", u["SS1"], u["D1"]), ("HasMember", u["F1"], u["D1"]), ("APND", u["D3"], u["D1"])}
    answer = ok(client.query("GetAssociations", params))
    assert associations(answer) == expected and len(ids(answer)) == 3
    assert refs(client, "GetAssociations", params) == set(ids(answer))
    assert failed(client.query("GetAssociations", {})) == [("XDSStoredQueryMissingParam", "$uuid")]


def test_get_documents_and_associations(client: XdsClient, world: World) -> None:
    params = {"$XDSDocumentEntryUniqueId": listed(world.uid["D2"])}
    answer = ok(client.query("GetDocumentsAndAssociations", params))
    assert document_unique_ids(answer) == [world.uid["D2"]]
    u = world.uuid
    assert associations(answer) == {("HasMember", u["SS1"], u["D2"]), ("HasMember", u["F1"], u["D2"])}
    assert refs(client, "GetDocumentsAndAssociations", params) == set(ids(answer))
    assert failed(client.query("GetDocumentsAndAssociations", {"$homeCommunityId": quoted("urn:oid:1.2.3")})) == [
        ("XDSStoredQueryMissingParam", "$XDSDocumentEntryEntryUUID")
    ]


def test_get_submission_sets(client: XdsClient, world: World) -> None:
    params = {"$uuid": listed(world.uuid["D1"], world.uuid["D3"])}
    answer = ok(client.query("GetSubmissionSets", params))
    u = world.uuid
    assert set(ids(answer, "RegistryPackage")) == {u["SS1"], u["SS2"]}
    assert associations(answer) == {("HasMember", u["SS1"], u["D1"]), ("HasMember", u["SS2"], u["D3"])}
    assert refs(client, "GetSubmissionSets", params) == set(ids(answer))
    assert failed(client.query("GetSubmissionSets", {"$uuid": "('unterminated"})) == [("XDSRegistryError", "$uuid")]


def test_get_submission_set_and_contents(client: XdsClient, world: World) -> None:
    u = world.uuid
    params = {"$XDSSubmissionSetUniqueId": quoted(world.uid["SS1"])}
    answer = ok(client.query("GetSubmissionSetAndContents", params))
    assert set(ids(answer, "RegistryPackage")) == {u["SS1"], u["F1"]}
    assert document_unique_ids(answer) == sorted([world.uid["D1"], world.uid["D2"]])
    kinds = associations(answer)
    assert {
        ("HasMember", u["SS1"], u["D1"]),
        ("HasMember", u["SS1"], u["F1"]),
        ("HasMember", u["F1"], u["D2"]),
    } <= kinds
    assert refs(client, "GetSubmissionSetAndContents", {"$XDSSubmissionSetEntryUUID": quoted(u["SS1"])}) == set(
        ids(answer)
    )
    filtered = {**params, "$XDSDocumentEntryFormatCode": listed("nothing^^1.2.3")}
    assert document_unique_ids(ok(client.query("GetSubmissionSetAndContents", filtered))) == []
    both = {**params, "$XDSSubmissionSetEntryUUID": quoted(u["SS1"])}
    assert [c for c, _ in failed(client.query("GetSubmissionSetAndContents", both))] == ["XDSStoredQueryParamNumber"]


def test_get_folder_and_contents(client: XdsClient, world: World) -> None:
    u = world.uuid
    params = {"$XDSFolderEntryUUID": quoted(u["F1"])}
    answer = ok(client.query("GetFolderAndContents", params))
    assert ids(answer, "RegistryPackage") == [u["F1"]]
    assert document_unique_ids(answer) == sorted([world.uid["D1"], world.uid["D2"]])
    assert associations(answer) == {("HasMember", u["F1"], u["D1"]), ("HasMember", u["F1"], u["D2"])}
    assert refs(client, "GetFolderAndContents", {"$XDSFolderUniqueId": quoted(world.uid["F1"])}) == set(ids(answer))
    assert failed(client.query("GetFolderAndContents", {"$XDSFolderEntryUUID": u["F1"]})) == [
        ("XDSRegistryError", "$XDSFolderEntryUUID")  # not quoted
    ]


def test_get_folders_for_document(client: XdsClient, world: World) -> None:
    params = {"$XDSDocumentEntryUniqueId": quoted(world.uid["D2"])}
    assert ids(ok(client.query("GetFoldersForDocument", params)), "RegistryPackage") == [world.uuid["F1"]]
    assert refs(client, "GetFoldersForDocument", {"$XDSDocumentEntryEntryUUID": quoted(world.uuid["D1"])}) == {
        world.uuid["F1"]
    }
    assert ids(ok(client.query("GetFoldersForDocument", {"$XDSDocumentEntryUniqueId": quoted(world.uid["D3"])}))) == []
    assert failed(client.query("GetFoldersForDocument", {})) == [
        ("XDSStoredQueryMissingParam", "$XDSDocumentEntryEntryUUID")
    ]


def test_get_related_documents(client: XdsClient, world: World) -> None:
    u = world.uuid
    params = {"$XDSDocumentEntryEntryUUID": quoted(u["D3"]), "$AssociationTypes": listed(ebxml.APND)}
    answer = ok(client.query("GetRelatedDocuments", params))
    assert document_unique_ids(answer) == sorted([world.uid["D1"], world.uid["D3"]])
    assert associations(answer) == {("APND", u["D3"], u["D1"])}
    assert refs(client, "GetRelatedDocuments", params) == set(ids(answer))
    replaced = {**params, "$AssociationTypes": listed(ebxml.RPLC)}
    assert ids(ok(client.query("GetRelatedDocuments", replaced))) == []
    no_types = {"$XDSDocumentEntryEntryUUID": quoted(u["D3"])}
    assert failed(client.query("GetRelatedDocuments", no_types)) == [
        ("XDSStoredQueryMissingParam", "$AssociationTypes")
    ]


def test_unknown_stored_query_and_bad_return_type(client: XdsClient, world: World) -> None:
    assert [c for c, _ in failed(client.query("urn:uuid:00000000-0000-0000-0000-000000000000", {}))] == [
        "XDSUnknownStoredQuery"
    ]
    params = {"$XDSDocumentEntryUniqueId": listed(world.uid["D1"])}
    assert failed(client.query("GetDocuments", params, "RegistryObject")) == [("XDSRegistryError", "returnType")]
