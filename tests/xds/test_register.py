"""ITI-42 Register Document Set-b, accepted submissions: what lands in the registry tables, on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from lxml import etree

from esb.errors import XdsError
from esb.schemas import xml_schema
from profiles.xds import ebxml
from profiles.xds.config import XdsConfig
from profiles.xds.registry.register import Registry
from profiles.xds.registry.schema import codes, values
from tests.xds import registry_support, samples
from tests.xds.registry_support import (
    codes_raised,
    ok,
    row,
    rows,
    snapshot,
)

reg_engine, registry, pid = registry_support.reg_engine, registry_support.registry, registry_support.pid

pytestmark = pytest.mark.usefixtures("db_url")
REPO_ROOT = Path(__file__).resolve().parents[2]


def stored(xml: bytes) -> Any:
    return etree.fromstring(xml)


def test_submission_set_and_document(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    doc_uid, ss_uid = samples.new_oid(), samples.new_oid()
    ok(registry, samples.submission(pid, document={"unique_id": doc_uid}, ss={"unique_id": ss_uid}))

    ss = row(reg_engine, unique_id=ss_uid)
    doc = row(reg_engine, unique_id=doc_uid)
    assert ss.kind == "submission_set" and doc.kind == "document"
    for obj in (ss, doc):
        assert obj.id.startswith("urn:uuid:") and obj.lid == obj.id and obj.status == ebxml.APPROVED
        assert obj.patient_id == pid and obj.submission == ss.id
        assert obj.home_community_id == XdsConfig().home_community_id
    assert ss.submission_time == "20240102030500" and ss.source_id == samples.SOURCE_ID
    assert (doc.object_type, doc.mime_type, doc.size) == (ebxml.STABLE_DOCUMENT, "text/xml", len(samples.CONTENT))
    assert doc.hash == samples.sha1(samples.CONTENT)
    assert doc.repository_unique_id == samples.REPOSITORY_UNIQUE_ID
    # DTM right-padded with zeros to 14 digits
    assert (doc.creation_time, doc.service_start_time, doc.service_stop_time) == (
        "20240102030405",
        "20040102030400",
        "20040102000000",
    )
    (member,) = rows(reg_engine, kind="association")
    assert (member.association_type, member.source_object, member.target_object) == (ebxml.HAS_MEMBER, ss.id, doc.id)

    element = stored(doc.xml)
    assert (element.get("id"), element.get("lid"), element.get("status")) == (doc.id, doc.id, ebxml.APPROVED)
    for child in element.iter(ebxml.q("rim", "Classification"), ebxml.q("rim", "ExternalIdentifier")):
        assert str(child.get("id")).startswith("urn:uuid:")
        assert (child.get("classifiedObject") or child.get("registryObject")) == doc.id
    link = stored(member.xml)
    assert (link.get("sourceObject"), link.get("targetObject")) == (ss.id, doc.id)
    # what is stored is valid ebRIM, ready for a LeafClass answer
    assert xml_schema("ebrs-lcm").validate(samples.request(stored(ss.xml), element, link))


def test_side_tables(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    doc_uid = samples.new_oid()
    document = {"unique_id": doc_uid, "reference_ids": ["A-1^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:accession"]}
    ok(registry, samples.submission(pid, document=document))
    doc = row(reg_engine, unique_id=doc_uid)
    ss = row(reg_engine, kind="submission_set")
    with reg_engine.connect() as conn:
        found = {(r.object_id, r.scheme, r.code, r.coding_scheme) for r in conn.execute(sa.select(codes))}
        named = {(r.object_id, r.name, r.value) for r in conn.execute(sa.select(values))}
    expected = {
        (doc.id, ebxml.DE_CLASS_CODE, *samples.CLASS_CODE[:2]),
        (doc.id, ebxml.DE_TYPE_CODE, *samples.TYPE_CODE[:2]),
        (doc.id, ebxml.DE_FORMAT_CODE, *samples.FORMAT_CODE[:2]),
        (doc.id, ebxml.DE_CONFIDENTIALITY_CODE, *samples.CONFIDENTIALITY_CODE[:2]),
        (doc.id, ebxml.DE_HEALTHCARE_FACILITY_TYPE_CODE, *samples.HEALTHCARE_FACILITY_TYPE_CODE[:2]),
        (doc.id, ebxml.DE_PRACTICE_SETTING_CODE, *samples.PRACTICE_SETTING_CODE[:2]),
        (doc.id, ebxml.DE_EVENT_CODE, *samples.EVENT_CODE[:2]),
        (ss.id, ebxml.SS_CONTENT_TYPE_CODE, *samples.CONTENT_TYPE_CODE[:2]),
    }
    assert found == expected
    assert named == {
        (doc.id, "author_person", "^Welby^Marcus^^^Dr^MD"),
        (ss.id, "author_person", "^Welby^Marcus^^^Dr^MD"),
        (doc.id, "reference_id", "A-1^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:accession"),
    }


def test_folder_with_two_documents(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    folder_uid = samples.new_oid()
    ok(registry, samples.submission(pid, documents=2, folder=True, folder_args={"unique_id": folder_uid}))
    folder = row(reg_engine, unique_id=folder_uid)
    docs = {r.id for r in rows(reg_engine, kind="document")}
    assert folder.kind == "folder" and len(docs) == 2
    assert folder.last_update_time is not None and len(folder.last_update_time) == 14
    slot = stored(folder.xml).find(ebxml.q("rim", "Slot"))
    assert slot.get("name") == "lastUpdateTime" and slot.findtext(f".//{ebxml.q('rim', 'Value')}") == (
        folder.last_update_time
    )
    links = rows(reg_engine, kind="association")
    assert len(links) == 7  # SS->2 docs, SS->folder, folder->2 docs, SS->the 2 folder links
    assert {r.target_object for r in links if r.source_object == folder.id} == docs
    ids = {r.id for r in rows(reg_engine)}
    assert all(r.source_object in ids and r.target_object in ids for r in links)
    with reg_engine.connect() as conn:
        (folder_code,) = conn.execute(sa.select(codes).where(codes.c.object_id == folder.id)).all()
    assert (folder_code.scheme, folder_code.code) == (ebxml.FOLDER_CODE_LIST, samples.FOLDER_CODE[0])


def test_on_demand_document(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    ok(registry, samples.submission(pid, on_demand=True))
    doc = row(reg_engine, kind="document")
    assert doc.object_type == ebxml.ON_DEMAND_DOCUMENT
    assert (doc.hash, doc.size, doc.creation_time) == (None, None, None)


def test_uuid_ids_are_kept(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    ss_id, doc_id = samples.new_uuid(), samples.new_uuid()
    ok(registry, samples.submission(pid, ss_id=ss_id, doc_ids=[doc_id], uuids=True))
    assert row(reg_engine, kind="document").id == doc_id
    assert row(reg_engine, kind="submission_set").id == ss_id


def test_top_level_classification_goes_into_its_package(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    ss = samples.submission_set(pid, omit=["classification"])
    loose = samples.node_classification(ebxml.SUBMISSION_SET_NODE, "SubmissionSet01")
    doc = samples.document_entry(pid)
    member = samples.association(ebxml.HAS_MEMBER, "SubmissionSet01", "Document01", status="Original")
    ok(registry, samples.request(ss, doc, loose, member))
    package = stored(row(reg_engine, kind="submission_set").xml)
    nodes = [c.get("classificationNode") for c in package.iter(ebxml.q("rim", "Classification"))]
    assert ebxml.SUBMISSION_SET_NODE in nodes


def test_resubmitting_identical_document_is_accepted(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    """The same document (uniqueId, hash, size) may be registered again, e.g. by another source."""
    uid = samples.new_oid()
    ok(registry, samples.submission(pid, document={"unique_id": uid}))
    ok(registry, samples.submission(pid, document={"unique_id": uid, "hash": samples.sha1(samples.CONTENT).upper()}))
    assert len(rows(reg_engine, unique_id=uid)) == 2


def test_injection_looking_values_are_plain_values(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    hostile = "x' OR 1=1 --"
    drop = "'); DROP TABLE esb_xds_objects; --"
    uid = samples.new_oid()
    document = {"unique_id": uid, "title": drop, "reference_ids": [hostile], "author_person": drop}
    ok(registry, samples.submission(pid, document=document, ss={"comments": hostile}))
    doc = row(reg_engine, unique_id=uid)
    assert stored(doc.xml).find(f"{ebxml.q('rim', 'Name')}/{ebxml.q('rim', 'LocalizedString')}").get("value") == drop
    with reg_engine.connect() as conn:
        named = {(r.name, r.value) for r in conn.execute(sa.select(values).where(values.c.object_id == doc.id))}
    assert named == {("reference_id", hostile), ("author_person", drop)}
    assert len(rows(reg_engine)) == 3  # the table is there, with exactly what was registered


def test_register_in_the_callers_transaction(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    before = snapshot(reg_engine)
    with reg_engine.connect() as conn:
        with conn.begin() as transaction:
            registry.register_in(conn, samples.submission(pid))
            transaction.rollback()
    assert snapshot(reg_engine) == before
    bad = samples.submission(pid, document={"omit": ["classCode", "typeCode"]})
    with reg_engine.begin() as conn, pytest.raises(XdsError) as caught:
        registry.register_in(conn, bad)
    assert codes_raised(caught.value) == [("XDSRegistryMetadataError", "Document01")] * 2


def test_deprecate_and_counts(registry: Registry, reg_engine: sa.Engine, pid: str) -> None:
    uid = samples.new_oid()
    ok(registry, samples.submission(pid, documents=1, folder=True, document={"unique_id": uid}))
    assert registry.counts() == {
        "document.approved": 1,
        "document.deprecated": 0,
        "submission_set.approved": 1,
        "submission_set.deprecated": 0,
        "folder.approved": 1,
        "folder.deprecated": 0,
        "association.approved": 4,
        "association.deprecated": 0,
    }
    registry.deprecate(uid, actor="admin")
    doc = row(reg_engine, unique_id=uid)
    assert doc.status == ebxml.DEPRECATED and stored(doc.xml).get("status") == ebxml.DEPRECATED
    assert registry.counts()["document.deprecated"] == 1
    with pytest.raises(XdsError, match="already deprecated"):
        registry.deprecate(doc.id, actor="admin")
    with pytest.raises(XdsError, match="names no DocumentEntry"):
        registry.deprecate("1.2.3.4", actor="admin")


def test_code_sets(reg_engine: sa.Engine, pid: str, tmp_path: Path) -> None:
    """The shipped example accepts the sample codes; a code outside a configured set is refused."""
    example = REPO_ROOT / "config" / "xds-codes.yaml"
    ok(Registry(reg_engine, XdsConfig(code_sets=example), samples.MASTER_OID), samples.submission(pid))
    narrow = tmp_path / "codes.yaml"
    narrow.write_text(
        "code_sets:\n  classCode:\n    - {code: 'REPORT', scheme: '1.2.3'}\n  mimeType: [application/pdf]\n",
        encoding="utf-8",
    )
    registry = Registry(reg_engine, XdsConfig(code_sets=narrow), samples.MASTER_OID)
    response = registry.register(samples.submission(pid))
    assert [(e.get("errorCode"), e.get("location")) for e in response.iter(ebxml.q("rs", "RegistryError"))] == [
        ("XDSRegistryMetadataError", "Document01"),
        ("XDSRegistryMetadataError", "Document01"),
    ]
    ok(
        registry,
        samples.submission(pid, document={"class_code": ("REPORT", "1.2.3", "Report"), "mime_type": "application/pdf"}),
    )
