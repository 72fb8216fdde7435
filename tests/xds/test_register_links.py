"""ITI-42 associations: HasMember (Original/Reference, folders), RPLC, APND, XFRM, XFRM_RPLC, signs, IsSnapshotOf."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from lxml import etree

from profiles.xds import ebxml
from profiles.xds.registry.register import Registry
from tests.xds import registry_support, samples
from tests.xds.registry_support import ok, refused, register_document, row, rows, snapshot

reg_engine, registry, pid = registry_support.reg_engine, registry_support.registry, registry_support.pid

pytestmark = pytest.mark.usefixtures("db_url")


def links(engine: sa.Engine, kind: str) -> list[tuple[str, str]]:
    return [(r.source_object, r.target_object) for r in rows(engine, kind="association", association_type=kind)]


@pytest.mark.parametrize("kind", [ebxml.RPLC, ebxml.XFRM_RPLC])
def test_replacement_deprecates_the_original(registry: Registry, reg_engine: sa.Engine, pid: str, kind: str) -> None:
    original = register_document(registry, pid)
    uid = samples.new_oid()
    relation = samples.association(kind, "Document01", original)
    ok(registry, samples.submission(pid, document={"unique_id": uid}, associations=[relation]))
    replacement = row(reg_engine, unique_id=uid)
    old = row(reg_engine, id=original)
    assert old.status == ebxml.DEPRECATED and etree.fromstring(old.xml).get("status") == ebxml.DEPRECATED
    assert replacement.status == ebxml.APPROVED
    assert links(reg_engine, kind) == [(replacement.id, original)]
    # a deprecated document cannot be replaced, appended or transformed again
    again = samples.association(ebxml.RPLC, "Document01", original, id="again")
    assert refused(registry, samples.submission(pid, associations=[again])) == [
        ("XDSRegistryDeprecatedDocumentError", "again")
    ]


def test_replacement_joins_the_originals_folders(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    uid = samples.new_oid()
    ok(registry, samples.submission(pid, folder=True, document={"unique_id": uid}))
    original = row(reg_engine, unique_id=uid).id
    folder = row(reg_engine, kind="folder")
    with reg_engine.begin() as conn:  # make the folder's lastUpdateTime visibly old
        conn.execute(sa.text("UPDATE esb_xds_objects SET last_update_time = '20000101000000' WHERE kind = 'folder'"))
    new_uid = samples.new_oid()
    relation = samples.association(ebxml.RPLC, "Document01", original)
    ok(registry, samples.submission(pid, document={"unique_id": new_uid}, associations=[relation]))
    replacement = row(reg_engine, unique_id=new_uid).id
    members = {target for source, target in links(reg_engine, ebxml.HAS_MEMBER) if source == folder.id}
    assert members == {original, replacement}
    added = [
        r
        for r in rows(reg_engine, kind="association")
        if r.target_object == replacement and r.source_object == folder.id
    ]
    assert len(added) == 1 and added[0].status == ebxml.APPROVED
    assert etree.fromstring(added[0].xml).get("sourceObject") == folder.id
    touched = row(reg_engine, id=folder.id)
    assert touched.last_update_time > "20000101000000"
    slot_values = etree.fromstring(touched.xml).xpath(
        "//rim:Slot[@name='lastUpdateTime']//rim:Value/text()", namespaces=ebxml.NSMAP
    )
    assert slot_values == [touched.last_update_time]


@pytest.mark.parametrize("kind", [ebxml.APND, ebxml.XFRM, ebxml.SIGNS])
def test_relations_that_keep_the_original(registry: Registry, reg_engine: sa.Engine, pid: str, kind: str) -> None:
    original = register_document(registry, pid)
    uid = samples.new_oid()
    relation = samples.association(kind, "Document01", original)
    ok(registry, samples.submission(pid, document={"unique_id": uid}, associations=[relation]))
    assert row(reg_engine, id=original).status == ebxml.APPROVED
    assert links(reg_engine, kind) == [(row(reg_engine, unique_id=uid).id, original)]


def test_signs_a_document_of_the_same_submission(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    signature = samples.association(ebxml.SIGNS, "Document02", "Document01")
    ok(registry, samples.submission(pid, documents=2, associations=[signature]))
    assert len(links(reg_engine, ebxml.SIGNS)) == 1


def test_snapshot_of_an_on_demand_document(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    on_demand_uid = samples.new_oid()
    ok(registry, samples.submission(pid, on_demand=True, document={"unique_id": on_demand_uid}))
    on_demand = row(reg_engine, unique_id=on_demand_uid).id
    snapshot_of = samples.association(ebxml.IS_SNAPSHOT_OF, "Document01", on_demand)
    ok(registry, samples.submission(pid, associations=[snapshot_of]))
    assert row(reg_engine, id=on_demand).status == ebxml.APPROVED
    assert len(links(reg_engine, ebxml.IS_SNAPSHOT_OF)) == 1
    stable = register_document(registry, pid)
    wrong = samples.association(ebxml.IS_SNAPSHOT_OF, "Document01", stable, id="snap")
    assert refused(registry, samples.submission(pid, associations=[wrong])) == [("XDSRegistryMetadataError", "snap")]


def test_relation_targets_must_be_registered_documents(registry: Registry, pid: str) -> None:
    inside = samples.association(ebxml.RPLC, "Document02", "Document01", id="inside")
    assert refused(registry, samples.submission(pid, documents=2, associations=[inside])) == [
        ("XDSRegistryMetadataError", "inside")
    ]
    original = register_document(registry, pid)
    backwards = samples.association(ebxml.APND, original, "Document01", id="backwards")
    assert refused(registry, samples.submission(pid, associations=[backwards])) == [
        ("XDSRegistryMetadataError", "backwards")
    ]
    first = samples.association(ebxml.RPLC, "Document01", original, id="first")
    second = samples.association(ebxml.RPLC, "Document02", original, id="second")
    assert refused(registry, samples.submission(pid, documents=2, associations=[first, second])) == [
        ("XDSRegistryMetadataError", "second")
    ]


def test_relation_to_another_patients_document(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    theirs = register_document(registry, samples.add_patient(reg_engine))
    before = snapshot(reg_engine)
    relation = samples.association(ebxml.RPLC, "Document01", theirs, id="rplc")
    assert refused(registry, samples.submission(pid, associations=[relation])) == [("XDSPatientIdDoesNotMatch", "rplc")]
    reference = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", theirs, id="ref", status="Reference")
    assert refused(registry, samples.submission(pid, associations=[reference])) == [("XDSPatientIdDoesNotMatch", "ref")]
    assert snapshot(reg_engine) == before


def test_merged_patients_documents_belong_to_the_survivor(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    """A document registered under B, B merged into A: A's submissions may replace it."""
    loser = samples.add_patient(reg_engine)
    original = register_document(registry, loser)
    with reg_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE esb_empi_persons SET status = 'merged', merged_into = :a WHERE id = :b"),
            {"a": pid.split("^")[0], "b": loser.split("^")[0]},
        )
    relation = samples.association(ebxml.RPLC, "Document01", original)
    ok(registry, samples.submission(pid, associations=[relation]))
    assert row(reg_engine, id=original).status == ebxml.DEPRECATED


def test_reference_to_a_registered_document(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    existing = register_document(registry, pid)
    ss_uid = samples.new_oid()
    reference = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", existing, status="Reference")
    ok(registry, samples.submission(pid, documents=0, ss={"unique_id": ss_uid}, associations=[reference]))
    ss = row(reg_engine, unique_id=ss_uid).id
    assert (ss, existing) in links(reg_engine, ebxml.HAS_MEMBER)
    wrong = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", existing, id="orig", status="Original")
    assert refused(registry, samples.submission(pid, documents=0, associations=[wrong])) == [
        ("XDSRegistryMetadataError", "orig")
    ]


def test_add_registered_document_to_registered_folder(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    ok(registry, samples.submission(pid, documents=0, folder=True))
    folder = row(reg_engine, kind="folder")
    existing = register_document(registry, pid)
    with reg_engine.begin() as conn:
        conn.execute(sa.text("UPDATE esb_xds_objects SET last_update_time = '20000101000000' WHERE kind = 'folder'"))
    member = samples.association(ebxml.HAS_MEMBER, folder.id, existing, id="fm")
    in_submission = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", "fm")
    ok(registry, samples.submission(pid, documents=0, associations=[member, in_submission]))
    assert (folder.id, existing) in links(reg_engine, ebxml.HAS_MEMBER)
    assert row(reg_engine, id=folder.id).last_update_time > "20000101000000"


def test_has_member_shapes(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    existing = register_document(registry, pid)
    old_ss = row(reg_engine, kind="submission_set").id
    from_document = samples.association(ebxml.HAS_MEMBER, "Document01", existing, id="fromdoc")
    assert refused(registry, samples.submission(pid, associations=[from_document])) == [
        ("XDSRegistryMetadataError", "fromdoc")
    ]
    from_old_set = samples.association(ebxml.HAS_MEMBER, old_ss, "Document01", id="oldss", status="Original")
    assert refused(registry, samples.submission(pid, associations=[from_old_set])) == [
        ("XDSRegistryMetadataError", "oldss")
    ]
    folder_holds_folder = samples.association(ebxml.HAS_MEMBER, "Folder01", "Folder01", id="ff")
    assert refused(registry, samples.submission(pid, folder=True, associations=[folder_holds_folder])) == [
        ("XDSRegistryMetadataError", "ff")
    ]
