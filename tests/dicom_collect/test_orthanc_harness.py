"""The Orthanc harness: a real PACS on 127.0.0.1 that answers REST, DICOMweb and DIMSE, and knows our AE."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset

from profiles.dicom.qrscu import QrScu
from tests.dicom_collect.conftest import remote_of, upload_study
from tests.orthanc_support import Orthanc


def test_uploaded_studies_are_listed_and_found_over_dicomweb_and_dimse(orthanc: Orthanc, tmp_path: Path) -> None:
    study = upload_study(orthanc, tmp_path, "19990101", (2, 1))
    assert study.uid in orthanc.studies()
    qido = orthanc.session.get(f"{orthanc.dicomweb_url}/studies", params={"StudyInstanceUID": study.uid}, timeout=10)
    assert qido.status_code == 200
    assert [s["0020000D"]["Value"][0] for s in qido.json()] == [study.uid]
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study.uid
    query.NumberOfStudyRelatedInstances = ""
    matches = QrScu(remote_of(orthanc), local_ae="ESBTEST", spool_dir=tmp_path / "spool").find(query)
    assert [(m.StudyInstanceUID, int(m.NumberOfStudyRelatedInstances)) for m in matches] == [(study.uid, 3)]


def test_orthanc_knows_our_ae_for_cmove(orthanc: Orthanc) -> None:
    modalities = orthanc.session.get(f"{orthanc.http_url}/modalities", params={"expand": ""}, timeout=10).json()
    assert modalities["esb"]["AET"] == orthanc.peer_ae_title == "ESB"
    assert (modalities["esb"]["Host"], modalities["esb"]["Port"]) == ("127.0.0.1", orthanc.peer_port)
    orthanc.add_modality("other", "OTHER", 4242)
    modalities = orthanc.session.get(f"{orthanc.http_url}/modalities", params={"expand": ""}, timeout=10).json()
    assert modalities["other"]["AET"] == "OTHER"


def test_remote_access_is_off_and_dicom_port_is_listening(orthanc: Orthanc) -> None:
    system = orthanc.session.get(f"{orthanc.http_url}/system", timeout=10).json()
    assert system["DicomAet"] == "ORTHANC" and system["DicomPort"] == orthanc.dicom_port
    config = (orthanc.directory / "orthanc.json").read_text(encoding="utf-8")
    assert '"RemoteAccessAllowed": false' in config and '"StorageAccessOnFind": "Never"' in config
