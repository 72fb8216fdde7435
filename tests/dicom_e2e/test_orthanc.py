"""Acceptance, the hospital PACS (Orthanc): its studies come in by a collection job and by on-demand retrieval.

Collection: ``service:dicom-archive/collect`` (what a ``timer:`` route calls,
docs/examples/dicom-collect.yaml) C-FINDs Orthanc for a date window and has
it C-MOVE the studies to the engine's own AE (Orthanc's DicomModalities name
it at the dicom-in port), or C-GETs them.

On-demand: Orthanc plays a hospital that keeps its images and sends one KOS
per exam to the dicom-ondemand route. The instances are then served by the
engine (WADO-RS, C-GET, C-MOVE), fetched from Orthanc on first use and cached;
the study gets its own XDS-I manifest naming this archive as where to retrieve.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from pathlib import Path

import requests
import yaml
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from requests_toolbelt.multipart.decoder import MultipartDecoder  # type: ignore[import-untyped]

from esb.exchange import Attachment, Exchange
from profiles.dicom.api import InstanceRef
from profiles.dicom.collect import CollectRequest
from profiles.dicom.ondemand import archive_sources
from tests.dicom_e2e.harness import HIS_NAMESPACE, MODALITY_AE, ROOT, STORESCP_AE, Platform, same_instance
from tests.dicom_e2e.test_xdsi import kos_of, listed, manifest_entry
from tests.dicom_support import MR, SMALL_CT, identifier, series
from tests.xds_e2e.zeep_xds import XdsClient

KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
#: the patient and study attributes a KOS carries (Patient and General Study modules)
COPIED = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
          "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName")  # fmt: skip
#: StudyDates no other run uses: both database passes share one Orthanc, queried by date
_years = itertools.count(1961)


def upload(esb: Platform, directory: Path, *layout: tuple[int, str], patient_id: str = "HOSP-1") -> list[Path]:
    """One study uploaded to Orthanc, a series per (size, source file) of ``layout`` (fresh UIDs); its files."""
    date = f"{next(_years)}0315"
    study_uid = generate_uid()
    files: list[Path] = []
    for number, (size, source) in enumerate(layout):
        files += series(directory / str(number), size, study_uid=study_uid, study_date=date, issuer=HIS_NAMESPACE,
                        patient_id=patient_id, source=source)  # fmt: skip
    esb.orthanc.upload(files)
    return files


def sop_uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def instances_of(esb: Platform, study_uid: str) -> dict[str, InstanceRef]:
    return {r.sop_instance_uid: r for r in esb.archive.select("STUDY", identifier("STUDY", StudyInstanceUID=study_uid))}


def collect(esb: Platform, date: str, method: str) -> dict[str, object]:
    headers = {"dicom-collect-from": esb.orthanc.ae_title, "dicom-collect-since": date, "dicom-collect-until": date,
               "dicom-collect-method": method}  # fmt: skip
    reply = esb.call("dicom-archive", "collect", Exchange(body=b"", headers=headers))
    assert reply is not None and reply.headers["dicom-collect-job"]
    report: dict[str, object] = json.loads(reply.body)
    return report


def test_a_collection_job_brings_orthancs_studies_in_by_move_and_by_get(esb: Platform, tmp_path: Path) -> None:
    for method in ("move", "get"):
        files = upload(esb, tmp_path / method, (2, SMALL_CT), (1, MR))
        first = dcmread(files[0], stop_before_pixels=True)
        study_uid, date = str(first.StudyInstanceUID), str(first.StudyDate)
        assert esb.archive.study(study_uid) is None
        report = collect(esb, date, method)
        assert (report["status"], report["found"], report["retrieved"], report["instances"]) == ("done", 1, 1, 3)
        held = instances_of(esb, study_uid)
        assert sorted(held) == sorted(sop_uid(f) for f in files)
        for path in files:
            with esb.archive.open(held[sop_uid(path)]) as stream:
                same_instance(stream.read(), path)
        again = collect(esb, date, method)  # the same window again: a new job, which finds the study held
        assert (again["found"], again["retrieved"], again["skipped"], again["instances"]) == (1, 0, 1, 0)
        assert len(instances_of(esb, study_uid)) == 3


def kos_for(files: list[Path], orthanc_ae: str, dicomweb: str) -> Dataset:
    """The hospital's KOS: series 1 names Orthanc's AE, series 2 its DICOMweb root, series 3 nothing (the sender)."""
    headers = [dcmread(p, stop_before_pixels=True) for p in files]
    first = headers[0]
    kos = Dataset()
    kos.file_meta = FileMetaDataset()
    kos.file_meta.MediaStorageSOPClassUID = UID(KOS_CLASS)
    kos.SOPClassUID = KOS_CLASS
    kos.SOPInstanceUID = kos.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    kos.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in COPIED:
        setattr(kos, keyword, first.get(keyword, ""))
    kos.Modality, kos.SeriesInstanceUID, kos.SeriesNumber, kos.InstanceNumber = "KO", generate_uid(), 999, 1
    title = Dataset()
    title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning = "113030", "DCM", "Manifest"
    kos.ValueType, kos.ConceptNameCodeSequence, kos.ContinuityOfContent = "CONTAINER", Sequence([title]), "SEPARATE"
    items = []
    series_uids = list(dict.fromkeys(str(h.SeriesInstanceUID) for h in headers))
    for number, series_uid in enumerate(series_uids):
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        if number == 0:
            item.RetrieveAETitle = orthanc_ae
        elif number == 1:
            item.RetrieveURL = f"{dicomweb}/studies/{first.StudyInstanceUID}/series/{series_uid}"
        refs = []
        for header in headers:
            if str(header.SeriesInstanceUID) == series_uid:
                ref = Dataset()
                ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = header.SOPClassUID, header.SOPInstanceUID
                refs.append(ref)
        item.ReferencedSOPSequence = Sequence(refs)
        items.append(item)
    evidence = Dataset()
    evidence.StudyInstanceUID = first.StudyInstanceUID
    evidence.ReferencedSeriesSequence = Sequence(items)
    kos.CurrentRequestedProcedureEvidenceSequence = Sequence([evidence])
    return kos


def image_keys(ref: InstanceRef) -> list[str]:
    """dcmtk ``-k`` options naming one instance at IMAGE level (Study Root)."""
    keys = {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": ref.study_uid, "SeriesInstanceUID": ref.series_uid,
            "SOPInstanceUID": ref.sop_instance_uid}  # fmt: skip
    return [option for keyword, text in keys.items() for option in ("-k", f"{keyword}={text}")]


def wado_instance(esb: Platform, ref: InstanceRef) -> bytes:
    url = f"{esb.dicomweb}/studies/{ref.study_uid}/series/{ref.series_uid}/instances/{ref.sop_instance_uid}"
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    answer = requests.get(url, headers={"Accept": accept}, timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    [part] = MultipartDecoder(answer.content, answer.headers["Content-Type"]).parts
    return bytes(part.content)


def test_a_hospital_kos_makes_its_study_retrievable_on_demand(esb: Platform, tmp_path: Path) -> None:
    local_id = f"H{uuid.uuid4().hex[:8]}"
    master = esb.register_patient(local_id, "Hospital^Kept")  # the hospital registers its patients
    files = upload(esb, tmp_path / "pacs", (2, SMALL_CT), (1, SMALL_CT), (1, MR), patient_id=local_id)
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    originals = {sop_uid(f): f for f in files}
    kos = kos_for(files, esb.orthanc.ae_title, esb.orthanc.dicomweb_url)
    kos_file = tmp_path / "kos.dcm"
    kos.save_as(kos_file, enforce_file_format=True)

    sent = esb.scu("storescu", "-v", "-aet", esb.orthanc.ae_title, files=[kos_file], port=esb.ports.ondemand)
    assert sent.returncode == 0 and "Received Store Response (Success)" in sent.stderr, sent.stderr
    known = instances_of(esb, study_uid)
    assert sorted(known) == sorted([*originals, str(kos.SOPInstanceUID)])
    assert all(known[uid].storage_key is None for uid in originals)  # known, not cached
    assert known[str(kos.SOPInstanceUID)].storage_key is not None  # the KOS itself is kept

    ct_by_ae, ct_moved, ct_by_url, mr_by_sender = files
    source = archive_sources(esb.db)
    orthanc, by_url = esb.orthanc.ae_title, esb.orthanc.dicomweb_url  # where the index says each one comes from
    assert [source(known[sop_uid(f)]) for f in files] == [orthanc, orthanc, by_url, orthanc]
    # WADO-RS through the engine: fetched from Orthanc (by its DICOM AE's DICOMweb root, and by the Retrieve URL)
    for path in (ct_by_ae, ct_by_url):
        same_instance(wado_instance(esb, known[sop_uid(path)]), path)
        cached = esb.archive.instance(sop_uid(path))
        assert cached is not None and cached.storage_key is not None
    # C-GET through the engine of the series the KOS gave no source for: fetched from the sending AE (Orthanc)
    got = tmp_path / "got"
    got.mkdir()
    done = esb.scu("getscu", "-S", "-aet", MODALITY_AE, "-od", str(got), *image_keys(known[sop_uid(mr_by_sender)]))
    assert done.returncode == 0, done.stderr
    [received] = list(got.iterdir())
    same_instance(received, mr_by_sender)
    # C-MOVE of an instance not fetched yet, to the storescp
    moved = esb.scu("movescu", "-S", "-aet", MODALITY_AE, "-aem", STORESCP_AE, *image_keys(known[sop_uid(ct_moved)]))
    assert moved.returncode == 0, moved.stderr
    same_instance(esb.storescp.received(study_uid)[sop_uid(ct_moved)], ct_moved)
    assert all(esb.archive.instance(uid).storage_key is not None for uid in originals)  # type: ignore[union-attr]

    # the study's manifest names this archive: consumers retrieve through us
    esb.wait_archived(study_uid, 5)
    [entry] = manifest_entry(XdsClient(esb), master)
    manifest = kos_of(XdsClient(esb), entry)
    assert set(listed(manifest)) == {*originals, str(kos.SOPInstanceUID)}
    [evidence] = manifest.CurrentRequestedProcedureEvidenceSequence
    assert {str(item.RetrieveAETitle) for item in evidence.ReferencedSeriesSequence} == {esb.ae_title}


def test_the_on_demand_intake_takes_key_object_selections_only(esb: Platform, tmp_path: Path) -> None:
    [image] = series(tmp_path / "ct", 1, patient_id="H-NOT-KOS")
    refused = esb.scu("storescu", "-v", "-aet", esb.orthanc.ae_title, files=[image], port=esb.ports.ondemand)
    assert "Received Store Response (Refused: SOPClassNotSupported)" in refused.stderr, refused.stderr
    assert esb.archive.instance(sop_uid(image)) is None
    bad_kos = tmp_path / "kos-without-evidence.dcm"
    kos = kos_for([image], esb.orthanc.ae_title, esb.orthanc.dicomweb_url)
    del kos.CurrentRequestedProcedureEvidenceSequence
    kos.save_as(bad_kos, enforce_file_format=True)
    refused = esb.scu("storescu", "-v", "-aet", esb.orthanc.ae_title, files=[bad_kos], port=esb.ports.ondemand)
    assert "Received Store Response (Error: DataSetDoesNotMatchSOPClass)" in refused.stderr, refused.stderr
    assert esb.archive.instance(str(kos.SOPInstanceUID)) is None


def test_a_kos_sent_again_or_replayed_changes_nothing(esb: Platform, tmp_path: Path) -> None:
    files = upload(esb, tmp_path / "pacs", (2, SMALL_CT), patient_id=f"H{uuid.uuid4().hex[:8]}")
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    kos = kos_for(files, esb.orthanc.ae_title, esb.orthanc.dicomweb_url)
    kos_file = tmp_path / "kos.dcm"
    kos.save_as(kos_file, enforce_file_format=True)
    headers = {"dicom-calling-ae": esb.orthanc.ae_title, "dicom-sop-instance-uid": str(kos.SOPInstanceUID)}

    def register(attachment: Attachment) -> Exchange:
        exchange = Exchange(body=b"{}", headers=dict(headers), attachments=[attachment])
        reply = esb.call("dicom-archive", "register-remote", exchange)
        assert reply is not None and reply.attachments == []
        return reply

    first = register(Attachment("kos", "application/dicom", data=kos_file.read_bytes()))
    assert (first.headers["dicom-new-instance"], first.headers["dicom-remote-instances"]) == ("true", "2")
    assert json.loads(first.headers["dicom-remote-studies"]) == [study_uid]
    same_instance(wado_instance(esb, instances_of(esb, study_uid)[sop_uid(files[0])]), files[0])  # now cached
    again = register(Attachment("kos", "application/dicom", data=kos_file.read_bytes()))
    assert again.headers["dicom-new-instance"] == "false"
    known = instances_of(esb, study_uid)
    assert len(known) == 3 and known[sop_uid(files[0])].storage_key is not None  # the cached copy stays
    assert known[sop_uid(files[1])].storage_key is None
    # a journal replay after the spooled KOS went into the store: found stored, nothing done twice
    replayed = register(Attachment("kos", "application/dicom", path=str(tmp_path / "moved-away.dcm")))
    assert (replayed.headers["dicom-study-uid"], replayed.headers["dicom-new-instance"]) == (study_uid, "false")
    assert instances_of(esb, study_uid) == known


def test_the_example_collection_route_asks_for_what_the_service_reads() -> None:
    """docs/examples/dicom-collect.yaml: every header it sets is one ``collect`` reads, with a valid value."""
    route = yaml.safe_load((ROOT / "docs" / "examples" / "dicom-collect.yaml").read_text(encoding="utf-8"))["route"]
    steps = route["steps"]
    headers = {s["set-header"]["name"]: str(s["set-header"]["value"]) for s in steps if "set-header" in s}
    assert steps[-1] == {"to": "service:dicom-archive/collect"} and route["from"].startswith("timer:")
    today = dt.date(2026, 11, 29)
    request = CollectRequest.from_headers(headers, today=today)
    assert sorted(headers) == sorted(f"dicom-collect-{name}" for name in ("from", "since", "until", "method", "budget"))
    assert (request.source, request.method, request.time_budget) == ("PACS1", "move", 3600.0)
    assert (request.since, request.until) == ("20261127", "20261129")
