"""Archive.find (C-FIND / QIDO-RS) on both databases: every level, both models, PS3.4 C.2.2.2 matching."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from esb.errors import DicomError
from profiles.dicom.archive import Archive
from profiles.dicom.schema import studies
from tests.dicom_support import MR, identifier, series


@dataclass
class Studies:
    s1: str
    s2: str
    s3: str
    s4: str
    s5: str
    ct_series: str
    mr_series: str


def edit(paths: list[Path], **values: Any) -> list[Path]:
    """Change attributes of generated files (what ``series()`` has no parameter for)."""
    for path in paths:
        ds = dcmread(path)
        for keyword, value in values.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
    return paths


@pytest.fixture
def data(archive: Archive, tmp_path: Path) -> Studies:
    s = Studies(*(generate_uid() for _ in range(5)), ct_series=generate_uid(), mr_series=generate_uid())
    files = [
        *edit(
            series(tmp_path / "1ct", 2, patient_id="P1", patient_name="Doe^John", study_uid=s.s1,
                   series_uid=s.ct_series, accession="ACC1", study_date="20260105", modality="CT"),
            StudyTime="083000", PatientBirthDate="19800101", SeriesNumber=1,
        ),
        *edit(
            series(tmp_path / "1mr", 1, patient_id="P1", patient_name="Doe^John", study_uid=s.s1,
                   series_uid=s.mr_series, accession="ACC1", study_date="20260105", source=MR),
            StudyTime="083000", PatientBirthDate="19800101", SeriesNumber=2,
        ),
        *edit(
            series(tmp_path / "2", 1, patient_id="P2", patient_name="doe^jane", study_uid=s.s2, accession="ACC2",
                   study_date="20260115", modality="CT"),
            StudyTime="141500",
        ),
        *edit(
            series(tmp_path / "3", 1, patient_id="P3", issuer="1.2.3.99", patient_name="Smith^Anna", study_uid=s.s3,
                   accession="AC_3%", study_date="20251220", modality="US"),
            StudyTime="2300",
        ),
        *edit(
            series(tmp_path / "4", 1, patient_id="P4", patient_name="M", study_uid=s.s4,
                   study_date="20260201", modality="CT"),
            SpecificCharacterSet="ISO_IR 192", PatientName="Müller^Jörg", AccessionNumber=None,
        ),
        *edit(
            series(tmp_path / "5", 1, patient_id="P5", patient_name="Y",
                   study_uid=s.s5, accession="ACC5", study_date="20260202", modality="MR"),
            SpecificCharacterSet="ISO_IR 192", PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう",
        ),
    ]  # fmt: skip
    for path in files:
        archive.store(path)
    return s


def found(archive: Archive, level: str = "STUDY", model: str = "study", **keys: Any) -> list[Dataset]:
    return list(archive.find(level, identifier(level, **keys), model=model))  # type: ignore[arg-type]


def study_uids(archive: Archive, **keys: Any) -> set[str]:
    return {str(ds.StudyInstanceUID) for ds in found(archive, **keys)}


def test_universal_study_query_returns_every_study_with_the_required_keys(archive: Archive, data: Studies) -> None:
    results = found(archive, StudyInstanceUID="", PatientName="", StudyDate="")
    assert {str(r.StudyInstanceUID) for r in results} == {data.s1, data.s2, data.s3, data.s4, data.s5}
    for r in results:
        assert r.QueryRetrieveLevel == "STUDY" and r.RetrieveAETitle == "ESBTEST"
        assert "PatientID" not in r  # not asked, and no unique key in the Study Root model
    first = next(r for r in results if r.StudyInstanceUID == data.s1)
    assert (str(first.PatientName), first.StudyDate) == ("Doe^John", "20260105")


PERSON_NAMES = [
    ("DOE*", {"s1", "s2"}),
    ("doe^j*", {"s1", "s2"}),
    ("DOE^JOHN", {"s1"}),
    ("Doe", set()),
    ("*oe^J?hn", {"s1"}),
    ("müller*", {"s4"}),
    ("YAMADA^TAROU", {"s5"}),  # the alphabetic group alone names the patient
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", {"s5"}),
]


def test_person_names_match_case_insensitively_with_wildcards(archive: Archive, data: Studies) -> None:
    for value, expected in PERSON_NAMES:
        assert study_uids(archive, PatientName=value) == {getattr(data, n) for n in expected}, value


RANGES: list[tuple[dict[str, str], set[str]]] = [
    ({"StudyDate": "20260101-20260110"}, {"s1"}),
    ({"StudyDate": "20260110-"}, {"s2", "s4", "s5"}),
    ({"StudyDate": "-20251231"}, {"s3"}),
    ({"StudyDate": "20260115"}, {"s2"}),
    ({"StudyDate": "2026"}, set()),
    ({"StudyTime": "0800-0900"}, {"s1"}),
    ({"StudyTime": "14"}, {"s2"}),  # an hour covers its minutes
    ({"StudyTime": "-0830"}, {"s1", "s4", "s5"}),  # s4, s5 keep CT_small's 072730
    ({"StudyTime": "2300-"}, {"s3"}),
    ({"StudyDate": "20260101-", "StudyTime": "0800-0900"}, {"s1"}),
]


def test_date_and_time_ranges(archive: Archive, data: Studies) -> None:
    for keys, expected in RANGES:
        assert study_uids(archive, **keys) == {getattr(data, n) for n in expected}, keys


def test_uid_lists_single_values_and_case_sensitive_text(archive: Archive, data: Studies) -> None:
    assert study_uids(archive, StudyInstanceUID=[data.s1, data.s3]) == {data.s1, data.s3}
    assert study_uids(archive, StudyInstanceUID=data.s2) == {data.s2}
    assert study_uids(archive, AccessionNumber="ACC1") == {data.s1}
    assert study_uids(archive, AccessionNumber="acc1") == set()
    assert study_uids(archive, AccessionNumber="ACC?") == {data.s1, data.s2, data.s5}
    assert study_uids(archive, AccessionNumber="AC_3%") == {data.s3}
    assert study_uids(archive, AccessionNumber="AC_*") == {data.s3}  # '_' and '%' are plain characters
    assert study_uids(archive, AccessionNumber="*") == {data.s1, data.s2, data.s3, data.s4, data.s5}
    assert study_uids(archive, AccessionNumber='""') == {data.s4}  # empty value matching
    assert study_uids(archive, PatientID="P1") == {data.s1}
    assert study_uids(archive, PatientID="P*", PatientName="SMITH*") == {data.s3}


def test_issuer_and_modalities_in_study(archive: Archive, data: Studies) -> None:
    assert study_uids(archive, IssuerOfPatientID="1.2.3.99") == {data.s3}
    assert study_uids(archive, IssuerOfPatientID="HIS1", PatientID="P2") == {data.s2}
    assert study_uids(archive, ModalitiesInStudy="MR") == {data.s1, data.s5}
    assert study_uids(archive, ModalitiesInStudy=["US", "MR"]) == {data.s1, data.s3, data.s5}
    [s1] = found(archive, StudyInstanceUID=data.s1, ModalitiesInStudy="", NumberOfStudyRelatedSeries="",
                 NumberOfStudyRelatedInstances="")  # fmt: skip
    assert list(s1.ModalitiesInStudy) == ["CT", "MR"]
    assert (s1.NumberOfStudyRelatedSeries, s1.NumberOfStudyRelatedInstances) == (2, 3)


def test_keys_the_index_does_not_keep_come_back_empty(archive: Archive, data: Studies) -> None:
    [r] = found(archive, StudyInstanceUID=data.s1, InstitutionAddress="x", NumberOfSeriesRelatedInstances="",
                OtherPatientIDsSequence=[])  # fmt: skip
    assert "InstitutionAddress" in r and r.InstitutionAddress in ("", None)
    assert "NumberOfSeriesRelatedInstances" in r and r.NumberOfSeriesRelatedInstances in ("", None)
    assert "OtherPatientIDsSequence" in r and len(r.OtherPatientIDsSequence) == 0


def test_non_ascii_answers_declare_utf8(archive: Archive, data: Studies) -> None:
    [r] = found(archive, StudyInstanceUID=data.s4, PatientName="")
    assert r.SpecificCharacterSet == "ISO_IR 192" and str(r.PatientName) == "Müller^Jörg"
    [ascii_only] = found(archive, StudyInstanceUID=data.s2, PatientName="")
    assert "SpecificCharacterSet" not in ascii_only


def test_series_and_image_levels(archive: Archive, data: Studies) -> None:
    results = found(archive, "SERIES", StudyInstanceUID=data.s1, SeriesInstanceUID="", Modality="", SeriesNumber="",
                    NumberOfSeriesRelatedInstances="")  # fmt: skip
    assert [
        (str(r.SeriesInstanceUID), r.Modality, r.SeriesNumber, r.NumberOfSeriesRelatedInstances) for r in results
    ] == [
        (data.ct_series, "CT", 1, 2),
        (data.mr_series, "MR", 2, 1),
    ]
    assert all(r.StudyInstanceUID == data.s1 and r.QueryRetrieveLevel == "SERIES" for r in results)
    assert [str(r.SeriesInstanceUID) for r in found(archive, "SERIES", StudyInstanceUID=data.s1, Modality="MR")] == [
        data.mr_series
    ]
    assert [str(r.SeriesInstanceUID) for r in found(archive, "SERIES", SeriesNumber="2")] == [data.mr_series]
    images = found(archive, "IMAGE", StudyInstanceUID=data.s1, SeriesInstanceUID=data.ct_series, SOPInstanceUID="",
                   InstanceNumber="", SOPClassUID="", InstanceAvailability="", Rows="")  # fmt: skip
    assert [r.InstanceNumber for r in images] == [1, 2]
    for r in images:
        assert (r.SeriesInstanceUID, r.StudyInstanceUID) == (data.ct_series, data.s1)
        assert (r.SOPClassUID, r.InstanceAvailability, r.Rows) == ("1.2.840.10008.5.1.4.1.1.2", "ONLINE", 128)
    assert len(found(archive, "IMAGE", SeriesInstanceUID=data.ct_series, InstanceNumber="2")) == 1
    # study-level keys at a lower level are matched too (a relational request)
    assert found(archive, "SERIES", StudyInstanceUID=data.s2, PatientName="DOE^JOHN") == []


def test_patient_root_model(archive: Archive, data: Studies) -> None:
    patients = found(archive, "PATIENT", "patient", PatientName="DOE*", PatientID="",
                     NumberOfPatientRelatedStudies="", NumberOfPatientRelatedInstances="")  # fmt: skip
    assert sorted((str(p.PatientID), p.NumberOfPatientRelatedStudies, p.NumberOfPatientRelatedInstances)
                  for p in patients) == [("P1", 1, 3), ("P2", 1, 1)]  # fmt: skip
    assert all(p.QueryRetrieveLevel == "PATIENT" and "StudyInstanceUID" not in p for p in patients)
    studies_of_p1 = found(archive, "STUDY", "patient", PatientID="P1", StudyInstanceUID="")
    assert [(str(s.PatientID), str(s.StudyInstanceUID)) for s in studies_of_p1] == [("P1", data.s1)]
    series_of_p1 = found(archive, "SERIES", "patient", PatientID="P1", StudyInstanceUID=data.s1)
    assert {str(s.PatientID) for s in series_of_p1} == {"P1"} and len(series_of_p1) == 2
    with pytest.raises(DicomError) as caught:
        found(archive, "PATIENT", "study", PatientID="P1")
    assert caught.value.status == 0xA900
    with pytest.raises(DicomError):
        found(archive, "FRAME", PatientID="P1")


def test_paging(archive: Archive, data: Studies) -> None:
    every = [str(r.StudyInstanceUID) for r in archive.find("STUDY", identifier("STUDY"))]
    first = [str(r.StudyInstanceUID) for r in archive.find("STUDY", identifier("STUDY"), limit=2)]
    rest = [str(r.StudyInstanceUID) for r in archive.find("STUDY", identifier("STUDY"), limit=10, offset=2)]
    assert first + rest == every and len(every) == 5


HOSTILE = ["x' OR '1'='1", "P1'; DROP TABLE esb_dicom_studies; --", "%", "_", "[P]*", "P1%", "P?'"]


def test_hostile_values_are_plain_values(archive: Archive, data: Studies, engine: sa.Engine) -> None:
    for value in HOSTILE:
        assert found(archive, PatientID=value) == [], value
        assert found(archive, PatientName=value) == [], value
        assert found(archive, AccessionNumber=value) == [], value
        assert found(archive, "IMAGE", SOPInstanceUID=value) == [], value
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(studies)).scalar() == 5
    assert study_uids(archive, PatientID="P1\x00") == {data.s1}  # NUL padding is not part of a value
