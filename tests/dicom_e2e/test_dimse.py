"""Acceptance, DIMSE: dcmtk stores, finds, moves and gets through the shipped dicom-in route; refusals.

The patient is registered first through the hl7-in route (ITI-8 ADT^A01 over
MLLP), as the HIS would; the study's images carry the HIS's Patient ID and
Issuer of Patient ID. C-FIND answers are read from the files findscu extracts.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid
from pynetdicom import _config
from pynetdicom.presentation import build_context

from tests.adapters.dicom import support
from tests.adapters.dicom.support import association
from tests.dicom_e2e.harness import HIS_NAMESPACE, MODALITY_AE, STORESCP_AE, Platform, same_instance
from tests.dicom_support import MR, identifier, series

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PRIVATE_CLASS = "1.2.826.0.1.3680043.8.498.77.1"
#: a storescu association profile proposing a SOP class dcmtk does not know next to CT Image Storage
PRIVATE_PROFILE = """\
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit
[[PresentationContexts]]
[Mixed]
PresentationContext1 = {sop_class}\\Uncompressed
PresentationContext2 = CTImageStorage\\Uncompressed
[[Profiles]]
[Private]
PresentationContexts = Mixed
"""


def study_files(directory: Path, patient_id: str) -> tuple[str, list[Path]]:
    """A CT series of 3 and an MR series of 2 for ``patient_id`` of the HIS domain; the Study UID and files."""
    study = generate_uid()
    ct = series(directory, 3, patient_id=patient_id, issuer=HIS_NAMESPACE, study_uid=study, accession="ACC-E2E")
    mr = series(directory, 2, patient_id=patient_id, issuer=HIS_NAMESPACE, study_uid=study, accession="ACC-E2E",
                source=MR)  # fmt: skip
    return study, ct + mr


def by_sop(files: list[Path]) -> dict[str, Path]:
    return {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}


def find(esb: Platform, directory: Path, model: str, **keys: str) -> list[Dataset]:
    """findscu (``-S`` study root, ``-P`` patient root) with ``keys``; the response identifiers."""
    directory.mkdir(parents=True)
    options = [model, "-X", "-od", str(directory), "-aet", MODALITY_AE]
    for keyword, value in keys.items():
        options += ["-k", f"{keyword}={value}"]
    done = esb.scu("findscu", *options)
    assert done.returncode == 0, done.stderr
    return [dcmread(p) for p in sorted(directory.glob("rsp*.dcm"))]


def archived_count(esb: Platform, study_uid: str) -> int:
    info = esb.archive.study(study_uid)
    return info.num_instances if info is not None else 0


def test_a_registered_patients_study_is_stored_found_moved_and_got(esb: Platform, tmp_path: Path) -> None:
    local_id = f"D{uuid.uuid4().hex[:8]}"
    master = esb.register_patient(local_id, "Doe^Jane")
    study, files = study_files(tmp_path / "sent", local_id)
    sent = by_sop(files)

    stored = esb.scu("storescu", "-aet", MODALITY_AE, files=files)
    assert stored.returncode == 0, stored.stderr
    info = esb.archive.study(study)
    assert info is not None and info.num_instances == 5 and info.master_id == master.split("^")[0]

    # C-FIND, Study Root: the study with its counts; Patient Root: the patient, then its studies
    [answer] = find(esb, tmp_path / "study-root", "-S", QueryRetrieveLevel="STUDY", StudyInstanceUID=study,
                    PatientID="", IssuerOfPatientID="", NumberOfStudyRelatedInstances="",
                    NumberOfStudyRelatedSeries="", ModalitiesInStudy="", AccessionNumber="")  # fmt: skip
    assert (answer.PatientID, answer.IssuerOfPatientID, answer.AccessionNumber) == (local_id, HIS_NAMESPACE, "ACC-E2E")
    assert (int(answer.NumberOfStudyRelatedInstances), int(answer.NumberOfStudyRelatedSeries)) == (5, 2)
    assert sorted(answer.ModalitiesInStudy) == ["CT", "MR"]
    [patient] = find(esb, tmp_path / "patient-root", "-P", QueryRetrieveLevel="PATIENT", PatientID=local_id,
                     PatientName="", NumberOfPatientRelatedStudies="")  # fmt: skip
    assert (str(patient.PatientName), int(patient.NumberOfPatientRelatedStudies)) == ("Test^Patient", 1)
    studies = find(esb, tmp_path / "patient-studies", "-P", QueryRetrieveLevel="STUDY", PatientID=local_id,
                   StudyInstanceUID="")  # fmt: skip
    assert [s.StudyInstanceUID for s in studies] == [study]
    images = find(esb, tmp_path / "images", "-S", QueryRetrieveLevel="IMAGE", StudyInstanceUID=study,
                  SeriesInstanceUID="", SOPInstanceUID="")  # fmt: skip
    assert sorted(str(i.SOPInstanceUID) for i in images) == sorted(sent)

    # C-MOVE to the storescp named in config/dicom.yaml: what arrives is what was sent
    moved = esb.scu("movescu", "-S", "-aet", MODALITY_AE, "-aem", STORESCP_AE,
                    "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}")  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    received = esb.storescp.received(study)
    assert sorted(received) == sorted(sent)
    for uid, path in received.items():
        same_instance(path, sent[uid])

    # C-GET, Patient Root at SERIES level (the MR series) and Study Root at STUDY level
    mr_series = str(dcmread(files[-1], stop_before_pixels=True).SeriesInstanceUID)
    got_series = tmp_path / "get-series"
    got_series.mkdir()
    done = esb.scu("getscu", "-P", "-aet", MODALITY_AE, "-od", str(got_series), "-k", "QueryRetrieveLevel=SERIES",
                   "-k", f"PatientID={local_id}", "-k", f"StudyInstanceUID={study}",
                   "-k", f"SeriesInstanceUID={mr_series}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(by_sop(list(got_series.iterdir()))) == sorted(by_sop(files[3:]))
    got_study = tmp_path / "get-study"
    got_study.mkdir()
    done = esb.scu("getscu", "-S", "-aet", MODALITY_AE, "-od", str(got_study),
                   "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = by_sop(list(got_study.iterdir()))
    assert sorted(got) == sorted(sent)
    for uid, path in got.items():
        same_instance(path, sent[uid])


def test_a_move_to_an_unknown_destination_fails_and_sends_nothing(esb: Platform, tmp_path: Path) -> None:
    study, files = study_files(tmp_path / "sent", f"U{uuid.uuid4().hex[:8]}")
    assert esb.scu("storescu", "-aet", MODALITY_AE, files=files[:1]).returncode == 0
    moved = esb.scu("movescu", "-v", "-S", "-aet", MODALITY_AE, "-aem", "NOWHERE",
                    "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}")  # fmt: skip
    assert "Received Final Move Response (Refused: MoveDestinationUnknown)" in moved.stderr, moved.stderr
    assert esb.storescp.received(study) == {}


def test_wrong_called_or_calling_ae_titles_are_rejected(esb: Platform, tmp_path: Path) -> None:
    study, files = study_files(tmp_path / "sent", f"A{uuid.uuid4().hex[:8]}")
    wrong_called = esb.scu("storescu", "-aet", MODALITY_AE, files=files, called="NOT-ESB")
    assert wrong_called.returncode != 0
    assert "Association Rejected" in wrong_called.stderr and "Called AE Title Not Recognized" in wrong_called.stderr
    # the on-demand intake takes the hospital's AE title only (calling_aes)
    stranger = esb.scu("echoscu", "-aet", "STRANGER", port=esb.ports.ondemand)
    assert stranger.returncode != 0 and "Calling AE Title Not Recognized" in stranger.stderr
    hospital = esb.scu("echoscu", "-aet", esb.orthanc.ae_title, port=esb.ports.ondemand)
    assert hospital.returncode == 0, hospital.stderr
    assert esb.archive.study(study) is None


def test_an_unknown_sop_class_fails_alone(esb: Platform, tmp_path: Path) -> None:
    study, files = study_files(tmp_path / "sent", f"S{uuid.uuid4().hex[:8]}")
    private = dcmread(files[0])
    private.SOPClassUID = private.file_meta.MediaStorageSOPClassUID = UID(PRIVATE_CLASS)
    private.SOPInstanceUID = private.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    private_file = tmp_path / "private.dcm"
    private.save_as(private_file, enforce_file_format=True)
    profile = tmp_path / "private.cfg"
    profile.write_text(PRIVATE_PROFILE.format(sop_class=PRIVATE_CLASS), encoding="utf-8")

    alone = esb.scu("storescu", "-v", "+v", "-xf", str(profile), "Private", "-aet", MODALITY_AE, files=[private_file])
    assert alone.returncode != 0
    assert "(Abstract Syntax Not Supported)" in alone.stderr  # the engine refused the presentation context
    assert "No presentation context for: (unknown SOP class)" in alone.stderr
    batch = esb.scu("storescu", "-nh", "-xf", str(profile), "Private", "-aet", MODALITY_AE,
                    files=[files[1], private_file, files[2]])  # fmt: skip
    assert "No presentation context for: (unknown SOP class)" in batch.stderr
    assert archived_count(esb, study) == 2  # the CT images before and after it


def test_a_corrupt_file_in_a_batch_fails_alone(esb: Platform, tmp_path: Path) -> None:
    study, files = study_files(tmp_path / "sent", f"C{uuid.uuid4().hex[:8]}")
    ct = files[:3]
    # storescu: the second of three CT files lost its Study Instance UID (dcmtk sends it; the archive cannot file it)
    broken = dcmread(ct[1])
    del broken.StudyInstanceUID
    broken.save_as(ct[1], enforce_file_format=True)
    batch = esb.scu("storescu", "-nh", "-v", "-aet", MODALITY_AE, files=ct)
    assert batch.stderr.count("Received Store Response (Success)") == 2, batch.stderr
    assert "Received Store Response (Error: DataSetDoesNotMatchSOPClass)" in batch.stderr, batch.stderr
    assert archived_count(esb, study) == 2
    assert esb.archive.instance(str(broken.SOPInstanceUID)) is None
    # bytes cut short in the middle of one association (sent raw, as no dcmtk tool would): refused 0xC000
    mr = files[3:]
    truncated = tmp_path / "truncated.dcm"
    raw = mr[0].read_bytes()
    truncated.write_bytes(raw[: len(raw) - len(support.dataset_bytes(mr[0])) // 2])
    chunked = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        with association(esb.ports.dicom, support.store_contexts(*mr), calling=MODALITY_AE) as assoc:
            assert assoc.is_established
            statuses = [int(assoc.send_c_store(path).Status) for path in (truncated, mr[1])]
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = chunked
    assert statuses == [0xC000, 0x0000]
    assert archived_count(esb, study) == 3 and esb.archive.instance(str(dcmread(mr[0]).SOPInstanceUID)) is None


def test_aborted_associations_leave_the_engine_serving(esb: Platform, tmp_path: Path) -> None:
    study, files = study_files(tmp_path / "sent", f"X{uuid.uuid4().hex[:8]}")
    # storescu aborts instead of releasing once its files are sent: what was answered stays stored
    aborted = esb.scu("storescu", "--abort", "-aet", MODALITY_AE, files=files[:2])
    assert aborted.returncode == 0, aborted.stderr
    assert archived_count(esb, study) == 2
    # a peer that vanishes half-way through its association request, and one that sends garbage
    with socket.create_connection(("127.0.0.1", esb.ports.dicom), timeout=5) as raw:
        raw.sendall(b"\x01\x00\x00\x00\x01\x00\x00\x01")  # an A-ASSOCIATE-RQ header announcing 256 bytes, then gone
    with socket.create_connection(("127.0.0.1", esb.ports.dicom), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\n\r\n")
        raw.settimeout(5)
        assert raw.recv(64)[:1] in (b"", b"\x07")  # closed, or an A-ABORT
    # an SCU that aborts in the middle of a C-FIND, after the first of two matches
    with association(esb.ports.dicom, [build_context(STUDY_ROOT_FIND)], calling=MODALITY_AE) as assoc:
        assert assoc.is_established
        query = identifier("IMAGE", StudyInstanceUID=study, SOPInstanceUID="")
        responses = assoc.send_c_find(query, STUDY_ROOT_FIND)
        status, match = next(responses)
        assert status.Status == 0xFF00 and match is not None
        assoc.abort()
    echo = esb.scu("echoscu", "-aet", MODALITY_AE)
    assert echo.returncode == 0, echo.stderr
    rest = esb.scu("storescu", "-aet", MODALITY_AE, files=files[2:])
    assert rest.returncode == 0, rest.stderr
    assert archived_count(esb, study) == 5
