"""RAD-68 publishing (profiles.xdsi.publisher) through the real repository and registry, found with ITI-18.

A study is stored in the real archive, its patient linked in the EMPI (by a
real ITI-8-style feed once, by rows otherwise), and its KOS goes through
Repository.provide (ITI-41) and Registry.register (ITI-42) in process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydicom.dataset import Dataset

from esb.storage import LocalDiskStore
from profiles.dicom.archive import Archive
from profiles.dicom.schema import ARCHIVED, COMPLETE, RECEIVED
from profiles.empi.model import Domain, Identifier, PatientRecord, PersonName
from profiles.empi.service import build_index
from profiles.xds import ebxml
from profiles.xds.config import XdsConfig
from profiles.xds.ebxml import q
from profiles.xds.registry.query import StoredQueries
from profiles.xds.registry.schema import objects
from profiles.xds.repository import Repository
from profiles.xdsi.publisher import Publication, Publisher
from profiles.xdsi.schema import manifests
from tests.dicom_support import series
from tests.xds import samples
from tests.xds.repository_support import refusing_registry, retrieve_request
from tests.xds.test_query_support import adhoc_query, find_documents, ids_of, listed, quote
from tests.xdsi.conftest import CONFIG, REPOSITORY_UID
from tests.xdsi.support import (
    HIS_NAMESPACE,
    HIS_OID,
    evidence_uids,
    files,
    link_patient,
    read_dicom,
    slot_values,
    study,
)


def store_study(archive: Archive, directory: Path, **options: Any) -> str:
    study_uid = study(directory, **options)
    for path in files(directory):
        archive.store(path)
    return study_uid


def complete(archive: Archive, study_uid: str) -> None:
    assert study_uid in archive.complete_studies()


def cx(person: str) -> str:
    return samples.patient_cx(person)


def kos_of(repository: Repository, publication: Publication) -> Any:
    """The KOS as the repository hands it out (ITI-43)."""
    answer, parts = repository.retrieve(retrieve_request((REPOSITORY_UID, publication.kos_uid)))
    assert answer.find(q("rs", "RegistryResponse")).get("status") == ebxml.SUCCESS
    [part] = parts
    assert answer.findtext(f"{q('xds', 'DocumentResponse')}/{q('xds', 'mimeType')}") == "application/dicom"
    return read_dicom(part.read())


def status_of_entry(engine: sa.Engine, entry_uuid: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(objects.c.status).where(objects.c.id == entry_uuid)).scalar_one())


def test_a_stored_study_is_published_and_found_by_the_master_id(
    archive: Archive,
    publisher: Publisher,
    repository: Repository,
    queries: StoredQueries,
    engine: sa.Engine,
    tmp_path: Path,
) -> None:
    index = build_index(engine)
    index.setup()
    fed = index.feed(
        PatientRecord(
            identifiers=(Identifier("P0001", Domain(HIS_NAMESPACE, HIS_OID, "ISO")),),
            names=(PersonName(family="Test", given="Patient"),),
            sex="M",
            birth_date="19800101",
        ),
        actor="test",
    )
    assert fed.person_id
    study_uid = store_study(archive, tmp_path / "study")
    complete(archive, study_uid)
    publication = publisher.publish(study_uid)
    assert publication.outcome == "published", publication
    master = cx(fed.person_id)
    # ITI-18 FindDocuments by the master ID finds exactly the manifest, coded as XDS-I.b wants
    answer = queries.run(adhoc_query("FindDocuments", find_documents(master)))
    assert answer.get("status") == ebxml.SUCCESS
    assert ids_of(answer) == [publication.entry_uuid]
    [entry] = answer.iter(q("rim", "ExtrinsicObject"))
    assert entry.get("mimeType") == "application/dicom"
    assert slot_values(entry, "repositoryUniqueId") == [REPOSITORY_UID]
    assert slot_values(entry, "sourcePatientId") == [f"P0001^^^&{HIS_OID}&ISO"]
    by_format = find_documents(master, FormatCode=listed("1.2.840.10008.5.1.4.1.1.88.59^^1.2.840.10008.2.6.1"))
    assert ids_of(queries.run(adhoc_query("FindDocuments", by_format))) == [publication.entry_uuid]
    by_study = find_documents(master, ReferenceIdList=listed(f"{study_uid}^^^^urn:ihe:iti:xds:2016:studyInstanceUID"))
    assert ids_of(queries.run(adhoc_query("FindDocumentsByReferenceId", by_study))) == [publication.entry_uuid]
    # the registered document is the KOS of every instance of the study
    manifest = kos_of(repository, publication)
    assert manifest.SOPInstanceUID == publication.kos_uid
    assert sorted(u for uids in evidence_uids(manifest).values() for u in uids) == sorted(
        i.sop_instance_uid for i in archive.select("STUDY", _study(study_uid))
    )
    with engine.connect() as conn:
        row = conn.execute(sa.select(manifests)).one()
    assert (row.study_uid, row.kos_uid, row.entry_uuid, row.patient_id, row.instances) == (
        study_uid,
        publication.kos_uid,
        publication.entry_uuid,
        master,
        5,
    )
    info = archive.study(study_uid)
    assert info is not None and info.status == ARCHIVED


def _study(study_uid: str) -> Any:
    ds = Dataset()
    ds.StudyInstanceUID = study_uid
    return ds


def test_an_unchanged_study_is_not_published_again(
    archive: Archive, publisher: Publisher, engine: sa.Engine, tmp_path: Path
) -> None:
    link_patient(engine)
    study_uid = store_study(archive, tmp_path / "study")
    first = publisher.publish(study_uid)
    again = publisher.publish(study_uid)
    assert (again.outcome, again.kos_uid, again.entry_uuid) == ("unchanged", first.kos_uid, first.entry_uuid)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(manifests)).scalar_one() == 1


def test_a_changed_study_gets_a_new_kos_that_replaces_the_old_entry(
    archive: Archive,
    publisher: Publisher,
    repository: Repository,
    queries: StoredQueries,
    engine: sa.Engine,
    tmp_path: Path,
) -> None:
    person = link_patient(engine)
    study_uid = store_study(archive, tmp_path / "study", ct=2, mr=1)
    complete(archive, study_uid)
    first = publisher.publish(study_uid)
    assert first.outcome == "published"
    for path in series(tmp_path / "more", 2, study_uid=study_uid, modality="CT"):
        archive.store(path)
    info = archive.study(study_uid)
    assert info is not None and info.status == RECEIVED
    complete(archive, study_uid)
    second = publisher.publish(study_uid)
    assert (second.outcome, second.replaced) == ("replaced", first.entry_uuid)
    assert second.kos_uid != first.kos_uid
    assert status_of_entry(engine, first.entry_uuid) == ebxml.DEPRECATED
    assert status_of_entry(engine, second.entry_uuid) == ebxml.APPROVED
    approved = queries.run(adhoc_query("FindDocuments", find_documents(cx(person))))
    assert ids_of(approved) == [second.entry_uuid]
    deprecated = find_documents(cx(person), Status=listed(ebxml.DEPRECATED))
    assert ids_of(queries.run(adhoc_query("FindDocuments", deprecated))) == [first.entry_uuid]
    related = queries.run(
        adhoc_query(
            "GetRelatedDocuments",
            {"$XDSDocumentEntryEntryUUID": quote(second.entry_uuid), "$AssociationTypes": listed(ebxml.RPLC)},
        )
    )
    rplc = [a for a in related.iter(q("rim", "Association")) if a.get("associationType") == ebxml.RPLC]
    assert [(a.get("sourceObject"), a.get("targetObject")) for a in rplc] == [(second.entry_uuid, first.entry_uuid)]
    manifest = kos_of(repository, second)
    assert sum(len(v) for v in evidence_uids(manifest).values()) == 5
    info = archive.study(study_uid)
    assert info is not None and info.status == ARCHIVED


def test_an_unlinked_patient_is_not_published_and_nothing_about_them_is_logged(
    archive: Archive, publisher: Publisher, engine: sa.Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study_uid = store_study(archive, tmp_path / "study", patient_id="UNKNOWN77")
    complete(archive, study_uid)
    with caplog.at_level(logging.INFO):
        publication = publisher.publish(study_uid)
    assert publication.outcome == "unresolved"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "no EMPI master ID" in text
    assert "UNKNOWN77" not in text and "Test" not in text and "HIS1" not in text
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(objects)).scalar_one() == 0
    info = archive.study(study_uid)
    assert info is not None and info.status == COMPLETE, "left for the next round"
    link_patient(engine, "UNKNOWN77")
    [retried] = publisher.publish_complete()
    assert (retried.study_uid, retried.outcome) == (study_uid, "published")


def test_a_registry_refusal_is_reported_and_nothing_is_recorded(
    archive: Archive, engine: sa.Engine, tmp_path: Path
) -> None:
    link_patient(engine)
    study_uid = store_study(archive, tmp_path / "study")
    complete(archive, study_uid)
    documents = LocalDiskStore(tmp_path / "refused-documents")
    refusing = Repository(
        engine, XdsConfig(repository_unique_id=REPOSITORY_UID), documents, refusing_registry("XDSRegistryError")
    )
    publication = Publisher(engine, archive, refusing, CONFIG, master_oid=samples.MASTER_OID).publish(study_uid)
    assert publication.outcome == "refused"
    assert [code for code, _ in publication.errors] == ["XDSRegistryError"]
    assert list(documents.scan()) == [], "the repository dropped the refused KOS"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(manifests)).scalar_one() == 0
    info = archive.study(study_uid)
    assert info is not None and info.status == COMPLETE


def test_an_unknown_study_is_empty(publisher: Publisher) -> None:
    assert publisher.publish("1.2.3.4.5.6.7").outcome == "empty"
