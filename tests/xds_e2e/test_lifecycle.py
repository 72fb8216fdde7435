"""Document relationships and folders end to end: RPLC, APND, XFRM (ITI TF-3 4.2.2.2) and Folder membership.

Documents go in through the repository (ITI-41, MTOM) so that the lifecycle is
seen from both sides: the registry's status and the repository's bytes.
"""

from __future__ import annotations

from typing import Any

import pytest

from profiles.xds import ebxml
from tests.xds import samples
from tests.xds_e2e.harness import RunningEngine
from tests.xds_e2e.zeep_xds import (
    ANY_STATUS,
    APPROVED,
    DEPRECATED,
    XdsClient,
    associations,
    document_unique_ids,
    entry_uuids,
    failed,
    find_documents,
    of_kind,
    ok,
    pairs,
    quoted,
    unique_ids,
)


def provide(client: XdsClient, pid: str, *, documents: int = 1, **options: Any) -> dict[str, str]:
    """ITI-41 of ``documents`` new documents (hash and size left to the repository); {symbolic id: uniqueId}."""
    submit = samples.submission(pid, documents=documents, document={"omit": ("hash", "size")}, **options)
    contents = {f"Document{n:02d}": f"<doc n='{n}'>{samples.new_oid()}</doc>".encode() for n in range(1, documents + 1)}
    ok(client.provide(submit, contents))
    return dict(zip(contents, unique_ids(submit), strict=True))


def uuid_of(client: XdsClient, unique_id: str) -> str:
    answer = ok(client.query("GetDocuments", {"$XDSDocumentEntryUniqueId": f"({quoted(unique_id)})"}))
    return entry_uuids(answer)[unique_id]


def related(client: XdsClient, entry_uuid: str, kind: str) -> Any:
    params = {"$XDSDocumentEntryEntryUUID": quoted(entry_uuid), "$AssociationTypes": f"({quoted(kind)})"}
    return ok(client.query("GetRelatedDocuments", params))


def test_replacement_deprecates_the_original(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    original = provide(client, pid)["Document01"]
    original_uuid = uuid_of(client, original)
    rplc = samples.association(ebxml.RPLC, "Document01", original_uuid)
    replacement = provide(client, pid, associations=[rplc])["Document01"]
    replacement_uuid = uuid_of(client, replacement)

    assert document_unique_ids(find_documents(client, pid)) == [replacement]
    deprecated = find_documents(client, pid, DEPRECATED)
    assert document_unique_ids(deprecated) == [original]
    assert [e.get("status") for e in of_kind(deprecated, "ExtrinsicObject")] == [ebxml.DEPRECATED]
    answer = related(client, replacement_uuid, ebxml.RPLC)
    assert document_unique_ids(answer) == sorted([original, replacement])
    assert associations(answer) == {("RPLC", replacement_uuid, original_uuid)}
    # the repository still serves the deprecated version
    assert [d.DocumentUniqueId for d in client.retrieve(*pairs(original)).DocumentResponse] == [original]

    before = xds.counts()
    again = samples.association(ebxml.RPLC, "Document01", original_uuid, id="again")
    submit = samples.submission(pid, associations=[again])
    answer = client.provide(submit, {"Document01": samples.CONTENT})
    assert failed(answer) == [("XDSRegistryDeprecatedDocumentError", "again")]
    assert xds.counts() == before


@pytest.mark.parametrize(
    ("kind", "original_status"),
    [(ebxml.APND, ebxml.APPROVED), (ebxml.XFRM, ebxml.APPROVED), (ebxml.XFRM_RPLC, ebxml.DEPRECATED)],
    ids=["APND", "XFRM", "XFRM_RPLC"],
)
def test_append_and_transform(xds: RunningEngine, client: XdsClient, kind: str, original_status: str) -> None:
    pid = xds.patient()
    original = provide(client, pid)["Document01"]
    original_uuid = uuid_of(client, original)
    derived = provide(client, pid, associations=[samples.association(kind, "Document01", original_uuid)])["Document01"]
    derived_uuid = uuid_of(client, derived)

    entries = of_kind(find_documents(client, pid, ANY_STATUS), "ExtrinsicObject")
    statuses = {e.get("id"): e.get("status") for e in entries}
    assert statuses == {original_uuid: original_status, derived_uuid: ebxml.APPROVED}
    answer = related(client, original_uuid, kind)
    assert document_unique_ids(answer) == sorted([original, derived])
    assert associations(answer) == {(kind.rsplit(":", 1)[-1], derived_uuid, original_uuid)}
    assert associations(related(client, original_uuid, ebxml.SIGNS)) == set()


def test_a_foreign_patients_document_cannot_be_replaced(xds: RunningEngine, client: XdsClient) -> None:
    pid, other = xds.patient(), xds.patient()
    original_uuid = uuid_of(client, provide(client, other)["Document01"])
    before = xds.counts()
    rplc = samples.association(ebxml.RPLC, "Document01", original_uuid, id="foreign")
    answer = client.provide(samples.submission(pid, associations=[rplc]), {"Document01": samples.CONTENT})
    assert failed(answer) == [("XDSPatientIdDoesNotMatch", "foreign")]
    assert xds.counts() == before


def folder_contents(client: XdsClient, folder_uid: str) -> Any:
    return ok(client.query("GetFolderAndContents", {"$XDSFolderUniqueId": quoted(folder_uid)}))


def test_folders(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    folder_uid = samples.new_oid()
    first = provide(client, pid, documents=2, folder=True, folder_args={"unique_id": folder_uid})
    answer = folder_contents(client, folder_uid)
    [folder] = of_kind(answer, "RegistryPackage")
    folder_uuid = str(folder.get("id"))
    assert document_unique_ids(answer) == sorted(first.values())
    doc_uuids = {uuid_of(client, uid) for uid in first.values()}
    assert associations(answer) == {("HasMember", folder_uuid, u) for u in doc_uuids}
    found = ok(client.query("FindFolders", {"$XDSFolderPatientId": quoted(pid), "$XDSFolderStatus": APPROVED}))
    assert [f.get("id") for f in of_kind(found, "RegistryPackage")] == [folder_uuid]

    # a later submission files a new document into the registered folder
    member = samples.association(ebxml.HAS_MEMBER, folder_uuid, "Document01", id="filed")
    listed_member = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", "filed")
    added = provide(client, pid, associations=[member, listed_member])["Document01"]
    assert document_unique_ids(folder_contents(client, folder_uid)) == sorted([*first.values(), added])

    # a replacement joins the folders of the document it replaces
    rplc = samples.association(ebxml.RPLC, "Document01", uuid_of(client, first["Document01"]))
    replacement = provide(client, pid, associations=[rplc])["Document01"]
    assert document_unique_ids(folder_contents(client, folder_uid)) == sorted([*first.values(), added, replacement])
    holders = ok(client.query("GetFoldersForDocument", {"$XDSDocumentEntryUniqueId": quoted(replacement)}))
    assert [f.get("id") for f in of_kind(holders, "RegistryPackage")] == [folder_uuid]
