"""Scoped image access (A2.6) in the archive's own queries, on SQLite and PostgreSQL: find at every level
and select (C-MOVE, C-GET, WADO) see only the studies of the scope's modalities and departments."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.uid import generate_uid

from esb.security.users import Scope
from profiles.dicom.archive import Archive
from tests.dicom import conftest as dicom_fixtures
from tests.dicom_support import MR, SMALL_CT, identifier, series

#: shared fixtures: a migrated database (db_url: SQLite, and PostgreSQL with ESB_TEST_PG_URL) and an archive on it
engine = dicom_fixtures.engine
blobs = dicom_fixtures.blobs
clock = dicom_fixtures.clock
make_archive = dicom_fixtures.make_archive
archive = dicom_fixtures.archive

CT, MR_ONLY = Scope(frozenset({"CT"})), Scope(frozenset({"MR"}))
CARDIOLOGY = Scope(departments=frozenset({"CARDIOLOGY"}))
CT_IN_CARDIOLOGY = Scope(frozenset({"CT"}), frozenset({"CARDIOLOGY"}))


def store(archive: Archive, directory: Path, patient: str, source: str, department: str) -> str:
    study = generate_uid()
    for path in series(directory / patient, 2, patient_id=patient, study_uid=study, source=source):
        ds = dcmread(path)
        ds.InstitutionalDepartmentName = department
        ds.save_as(path)
        archive.store(path)
    return study


def found(archive: Archive, level: str, scope: list[Scope] | None, model: str = "study") -> set[str]:
    keys = {"PatientID": "*"} if level == "PATIENT" else {"PatientID": "*", "StudyInstanceUID": ""}
    extra = {} if scope is None else {"scope": scope}
    return {str(ds.PatientID) for ds in archive.find(level, identifier(level, **keys), model=model, **extra)}


def test_find_and_select_keep_to_the_scope(archive: Archive, tmp_path: Path) -> None:
    studies = {
        "ct-radiology": store(archive, tmp_path, "ct-radiology", SMALL_CT, "Radiology"),
        "mr-cardiology": store(archive, tmp_path, "mr-cardiology", MR, "Cardiology"),
        "ct-cardiology": store(archive, tmp_path, "ct-cardiology", SMALL_CT, "cardiology"),
    }
    everyone = set(studies)
    assert found(archive, "STUDY", None) == everyone
    assert found(archive, "STUDY", [CT]) == {"ct-radiology", "ct-cardiology"}
    assert found(archive, "STUDY", [CARDIOLOGY]) == {"mr-cardiology", "ct-cardiology"}  # case ignored
    assert found(archive, "STUDY", [CT_IN_CARDIOLOGY]) == {"ct-cardiology"}
    assert found(archive, "STUDY", [MR_ONLY, CT_IN_CARDIOLOGY]) == {"mr-cardiology", "ct-cardiology"}
    assert found(archive, "SERIES", [MR_ONLY]) == {"mr-cardiology"}
    assert found(archive, "IMAGE", [CT_IN_CARDIOLOGY]) == {"ct-cardiology"}
    assert found(archive, "PATIENT", [MR_ONLY], model="patient") == {"mr-cardiology"}
    assert found(archive, "STUDY", []) == set()  # a grant with no scope at all sees nothing

    mr_study = identifier("STUDY", StudyInstanceUID=studies["mr-cardiology"])
    assert len(archive.select("STUDY", mr_study)) == 2
    assert archive.select("STUDY", mr_study, scope=[CT]) == []
    assert len(archive.select("STUDY", mr_study, scope=[CARDIOLOGY])) == 2
