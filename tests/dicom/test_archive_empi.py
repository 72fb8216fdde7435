"""The EMPI link: studies found by the patient's master ID, re-linked by an EMPI merge without a rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from profiles.dicom.archive import Archive
from profiles.empi.config import EmpiConfig
from profiles.empi.model import Domain, Identifier, PatientRecord, PersonName
from profiles.empi.mpi import MasterPatientIndex
from tests.dicom.conftest import MASTER_OID
from tests.dicom_support import identifier, series

HIS = Domain("HIS1", "1.2.3.1", "ISO")
RIS = Domain("RIS", "1.2.3.2", "ISO")


class NeverMatch:
    """Every record is its own person until the EMPI is told otherwise (a merge)."""

    def blocking_keys(self, record: PatientRecord) -> list[str]:
        return []

    def score(self, a: PatientRecord, b: PatientRecord) -> None:
        raise AssertionError("no candidates without blocking keys")


def record(value: str, domain: Domain, at: str = "20260101120000") -> PatientRecord:
    return PatientRecord(
        identifiers=(Identifier(value, domain, "MR"),),
        names=(PersonName("DOE", "JOHN"),),
        birth_date="19800101",
        source=domain.namespace,
        event_time=at,
    )


@pytest.fixture
def mpi(engine: sa.Engine) -> MasterPatientIndex:
    index = MasterPatientIndex(engine, EmpiConfig(), NeverMatch(), lambda r: r)
    index.setup()
    return index


def store_study(archive: Archive, directory: Path, patient_id: str, issuer: str) -> str:
    uid = generate_uid()
    for path in series(directory, 2, patient_id=patient_id, issuer=issuer, study_uid=uid):
        archive.store(path)
    return uid


def by_master(archive: Archive, master_id: str, issuer: str = MASTER_OID, level: str = "STUDY") -> set[str]:
    query = identifier(level, PatientID=master_id, IssuerOfPatientID=issuer, StudyInstanceUID="")
    model = "patient" if level == "PATIENT" else "study"
    results = archive.find(level, query, model=model)  # type: ignore[arg-type]
    if level == "PATIENT":
        return {f"{r.PatientID}/{r.IssuerOfPatientID}" for r in results}
    return {str(r.StudyInstanceUID) for r in results}


def test_master_id_finds_every_local_id_of_the_person_and_follows_merges(
    archive: Archive, mpi: MasterPatientIndex, tmp_path: Path
) -> None:
    his = mpi.feed(record("H1", HIS), actor="test")
    ris = mpi.feed(record("R9", RIS), actor="test")
    assert his.person_id and ris.person_id and his.person_id != ris.person_id
    study_his = store_study(archive, tmp_path / "his", "H1", "HIS1")  # issuer as a namespace
    study_ris = store_study(archive, tmp_path / "ris", "R9", "1.2.3.2")  # issuer as an OID
    store_study(archive, tmp_path / "other", "H1", "CLINIC9")  # same local ID, another authority
    sent_with_master = store_study(archive, tmp_path / "master", his.person_id, "EMPI")

    assert archive.master_patient("H1", "HIS1") == his.person_id
    assert archive.master_patient("H1", "1.2.3.1") == his.person_id
    assert archive.master_patient("R9", "RIS") == ris.person_id
    assert archive.master_patient("H1", "CLINIC9") is None
    assert by_master(archive, his.person_id) == {study_his, sent_with_master}
    assert by_master(archive, his.person_id, issuer="EMPI") == {study_his, sent_with_master}
    qualified = identifier("STUDY", PatientID=his.person_id, StudyInstanceUID="")
    item = Dataset()
    item.UniversalEntityID = MASTER_OID
    item.UniversalEntityIDType = "ISO"
    qualified.IssuerOfPatientIDQualifiersSequence = [item]
    assert {str(r.StudyInstanceUID) for r in archive.find("STUDY", qualified)} == {study_his, sent_with_master}
    qualified.IssuerOfPatientID = "EMPI"  # both names of the master domain at once
    assert {str(r.StudyInstanceUID) for r in archive.find("STUDY", qualified)} == {study_his, sent_with_master}
    info = archive.study(study_ris)
    assert info is not None and (info.patient_id, info.issuer, info.master_id) == ("R9", "1.2.3.2", ris.person_id)

    # ADT^A40: R9 is merged into H1; the archive rewrites nothing and follows at once
    mpi.merge(record("H1", HIS, at="20260102120000"), Identifier("R9", RIS), actor="test")
    assert archive.master_patient("R9", "1.2.3.2") == his.person_id
    assert by_master(archive, his.person_id) == {study_his, study_ris, sent_with_master}
    assert by_master(archive, ris.person_id) == set()  # a merged master ID names no one now (as in XDS)
    info = archive.study(study_ris)
    assert info is not None and info.master_id == his.person_id
    assert by_master(archive, his.person_id, level="PATIENT") == {"H1/HIS1", "R9/1.2.3.2", f"{his.person_id}/EMPI"}
    retrieve = identifier("PATIENT", PatientID=his.person_id, IssuerOfPatientID=MASTER_OID)
    assert {i.study_uid for i in archive.select("PATIENT", retrieve)} == {study_his, study_ris, sent_with_master}
    assert len(archive.select("PATIENT", retrieve)) == 6
    assert by_master(archive, "PUNKNOWN00000000") == set()


def test_local_issuer_matches_by_namespace_or_oid(archive: Archive, mpi: MasterPatientIndex, tmp_path: Path) -> None:
    mpi.feed(record("H1", HIS), actor="test")
    by_namespace = store_study(archive, tmp_path / "a", "H1", "HIS1")
    by_oid = store_study(archive, tmp_path / "b", "H2", "1.2.3.1")
    for issuer in ("HIS1", "1.2.3.1"):
        query = identifier("STUDY", IssuerOfPatientID=issuer, StudyInstanceUID="")
        assert {str(r.StudyInstanceUID) for r in archive.find("STUDY", query)} == {by_namespace, by_oid}, issuer
    query = identifier("STUDY", PatientID="H1", IssuerOfPatientID="1.2.3.1", StudyInstanceUID="")
    assert {str(r.StudyInstanceUID) for r in archive.find("STUDY", query)} == {by_namespace}
