"""The KOS manifest (profiles.xdsi.kos) of a study stored in the real archive: modules, evidence, TID 2010 tree.

pydicom reads it back; dcmtk (dcmdump, and dsrdump, which checks the SR
document's IOD and content tree) reads it as a second implementation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from profiles.dicom.api import InstanceRef
from profiles.dicom.archive import Archive
from profiles.xdsi import kos
from profiles.xdsi.config import KOS_SOP_CLASS
from tests.dicom_support import dcmtk, require_dcmtk
from tests.xdsi.conftest import CONFIG, REPOSITORY_UID
from tests.xdsi.support import evidence_uids, files, read_dicom, study


def stored_study(archive: Archive, directory: Path, **options: object) -> tuple[Dataset, list[InstanceRef]]:
    study_uid = study(directory, **options)  # type: ignore[arg-type]
    for path in files(directory):
        archive.store(path)
    info = archive.study(study_uid)
    assert info is not None
    ident = Dataset()
    ident.StudyInstanceUID = study_uid
    attributes = info.attributes
    attributes.StudyInstanceUID = study_uid
    return attributes, archive.select("STUDY", ident)


def test_kos_has_the_modules_of_the_iod_and_the_manifest_title(archive: Archive, tmp_path: Path) -> None:
    attributes, instances = stored_study(archive, tmp_path / "study")
    ds = read_dicom(kos.encode(kos.build(attributes, instances, CONFIG)))
    assert ds.SOPClassUID == KOS_SOP_CLASS == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    # Patient and General Study: the study's own values
    assert (ds.PatientID, ds.IssuerOfPatientID, str(ds.PatientName)) == ("P0001", "HIS1", "Test^Patient")
    assert (ds.StudyInstanceUID, ds.AccessionNumber, ds.StudyDate) == (attributes.StudyInstanceUID, "ACC1", "20261129")
    for keyword in ("PatientBirthDate", "PatientSex", "StudyTime", "ReferringPhysicianName", "StudyID"):
        assert keyword in ds
    # Key Object Document Series, General Equipment, Key Object Document
    assert ds.Modality == "KO" and ds.SeriesNumber == kos.KO_SERIES_NUMBER
    assert ds.SeriesInstanceUID not in {i.series_uid for i in instances}
    assert ds.ReferencedPerformedProcedureStepSequence == []
    assert ds.Manufacturer == CONFIG.manufacturer
    assert ds.InstanceNumber == 1 and ds.ContentDate and ds.ContentTime
    [request] = ds.ReferencedRequestSequence
    assert (request.AccessionNumber, request.StudyInstanceUID) == ("ACC1", ds.StudyInstanceUID)
    # SR Document Content: TID 2010 with the XDS-I manifest title
    assert (ds.ValueType, ds.ContinuityOfContent) == ("CONTAINER", "SEPARATE")
    [title] = ds.ConceptNameCodeSequence
    assert (title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning) == ("113030", "DCM", "Manifest")
    [template] = ds.ContentTemplateSequence
    assert (template.MappingResource, template.TemplateIdentifier) == ("DCMR", "2010")


def test_every_instance_is_in_the_evidence_with_its_retrieve_locations_and_in_the_content(
    archive: Archive, tmp_path: Path
) -> None:
    attributes, instances = stored_study(archive, tmp_path / "study", ct=3, mr=2)
    ds = kos.build(attributes, instances, CONFIG)
    expected: dict[str, list[str]] = {}
    for instance in instances:
        expected.setdefault(instance.series_uid, []).append(instance.sop_instance_uid)
    assert evidence_uids(ds) == expected
    assert sum(len(v) for v in expected.values()) == 5
    [study_item] = ds.CurrentRequestedProcedureEvidenceSequence
    for item in study_item.ReferencedSeriesSequence:
        assert item.RetrieveAETitle == "ESBTEST"
        assert item.RetrieveLocationUID == REPOSITORY_UID
        assert item.RetrieveURL == (
            f"http://127.0.0.1:8080/dicomweb/studies/{ds.StudyInstanceUID}/series/{item.SeriesInstanceUID}"
        )
        classes = {r.ReferencedSOPClassUID for r in item.ReferencedSOPSequence}
        assert classes <= {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"}
    items = ds.ContentSequence
    content = [(c.RelationshipType, c.ValueType, c.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for c in items]
    assert content == [("CONTAINS", "IMAGE", i.sop_instance_uid) for i in instances]


def test_dcmtk_reads_the_kos_as_a_valid_key_object_selection_document(archive: Archive, tmp_path: Path) -> None:
    require_dcmtk()
    attributes, instances = stored_study(archive, tmp_path / "study")
    path = tmp_path / "kos.dcm"
    path.write_bytes(kos.encode(kos.build(attributes, instances, CONFIG)))
    dumped = dcmtk("dcmdump", "+E", path)
    assert dumped.returncode == 0, dumped.stderr
    assert "KeyObjectSelectionDocumentStorage" in dumped.stdout
    assert "(0040,e011) UI [" + REPOSITORY_UID + "]" in dumped.stdout
    tree = dcmtk("dsrdump", path)
    assert tree.returncode == 0, tree.stderr
    # dsrdump warns about anything out of the IOD or the content tree; it only says it does not check templates
    problems = [line for line in tree.stderr.splitlines() if line.strip() and "template constraints" not in line]
    assert problems == []
    assert "Key Object Selection Document" in tree.stdout
    assert tree.stdout.count("<contains IMAGE:") == len(instances)


def test_without_accession_there_is_no_request_and_utf8_names_get_a_character_set(
    archive: Archive, tmp_path: Path
) -> None:
    attributes, instances = stored_study(archive, tmp_path / "study", accession="")
    attributes.PatientName = "张^三"
    ds = read_dicom(kos.encode(kos.build(attributes, instances, CONFIG)))
    assert "ReferencedRequestSequence" not in ds
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "张^三"


@pytest.mark.parametrize(
    ("sop_class", "expected"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", "IMAGE"),  # CT
        ("1.2.840.10008.5.1.4.1.1.7", "IMAGE"),  # Secondary Capture
        ("1.2.840.10008.5.1.4.1.1.9.1.1", "WAVEFORM"),  # 12-lead ECG
        ("1.2.840.10008.5.1.4.1.1.104.1", "COMPOSITE"),  # Encapsulated PDF
        ("1.2.840.10008.5.1.4.1.1.481.5", "COMPOSITE"),  # RT Plan
        ("1.2.840.10008.5.1.4.1.1.88.22", "COMPOSITE"),  # Enhanced SR
    ],
)
def test_content_item_value_type_follows_the_sop_class(sop_class: str, expected: str) -> None:
    assert kos.value_type(sop_class) == expected


def test_a_manifest_lists_at_least_one_instance() -> None:
    attributes = Dataset()
    attributes.StudyInstanceUID = "1.2.3"
    with pytest.raises(ValueError, match="at least one instance"):
        kos.build(attributes, [], CONFIG)
