"""Acceptance, XDS-I.b: a study stored by C-STORE gets a KOS in the XDS registry, found by the patient's master ID.

Everything goes through the shipped routes: dcmtk storescu into dicom-in, the
dicom-studies timer completing the study, the publisher (service:xdsi, started
by the xdsi route) submitting the manifest to the repository, zeep as the
Document Consumer on xds-registry (ITI-18) and xds-repository (ITI-43), and a
RAD-69 request over SOAP 1.2 / MTOM to /xdsi/imaging-source.
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import requests
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

from profiles.xds import ebxml
from profiles.xds.ebxml import q
from profiles.xdsi import rad69
from tests.dicom_e2e.harness import HIS_NAMESPACE, MODALITY_AE, Platform, same_instance, wait_for
from tests.dicom_support import series
from tests.soap_client import Reply, envelope, mtom, parse_reply
from tests.xds_e2e.zeep_xds import DEPRECATED, XdsClient, associations, find_documents, identifier, of_kind, ok
from tests.xds_e2e.zeep_xds import listed as listed_ids

KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
FORMAT_SCHEME = ebxml.DE_FORMAT_CODE


def store_study(esb: Platform, directory: Path, local_id: str, count: int, study_uid: str = "") -> list[Path]:
    files = series(directory, count, patient_id=local_id, issuer=HIS_NAMESPACE, study_uid=study_uid or None,
                   accession="ACC-XDSI")  # fmt: skip
    done = esb.scu("storescu", "-aet", MODALITY_AE, files=files)
    assert done.returncode == 0, done.stderr
    return files


def manifest_entry(client: XdsClient, master: str, statuses: str | None = None) -> list[Any]:
    answer = find_documents(client, master) if statuses is None else find_documents(client, master, statuses)
    return of_kind(answer, "ExtrinsicObject")


def format_code(entry: Any) -> str:
    [node] = [c for c in entry.iter(q("rim", "Classification")) if c.get("classificationScheme") == FORMAT_SCHEME]
    return str(node.get("nodeRepresentation"))


def kos_of(client: XdsClient, entry: Any) -> Dataset:
    """ITI-43: the manifest's bytes from the repository, read as DICOM."""
    unique_id = identifier(entry, ebxml.DE_UNIQUE_ID)
    repository = [v for v in _slot(entry, "repositoryUniqueId")][0]
    answer = ok(client.retrieve((repository, unique_id)))
    [document] = answer.DocumentResponse
    assert (document.DocumentUniqueId, document.mimeType) == (unique_id, "application/dicom")
    data = bytes(document.Document)
    assert (_slot(entry, "hash"), _slot(entry, "size")) == ([hashlib.sha1(data).hexdigest()], [str(len(data))])
    kos = dcmread(io.BytesIO(data))
    assert kos.file_meta.MediaStorageSOPClassUID == KOS_CLASS == kos.SOPClassUID
    assert kos.file_meta.MediaStorageSOPInstanceUID == kos.SOPInstanceUID == unique_id
    assert (kos.ContentTemplateSequence[0].TemplateIdentifier, kos.ValueType) == ("2010", "CONTAINER")
    return kos


def _slot(entry: Any, name: str) -> list[str]:
    for node in entry.iterchildren(q("rim", "Slot")):
        if node.get("name") == name:
            return [v.text or "" for v in node.iter(q("rim", "Value"))]
    return []


def listed(kos: Dataset) -> dict[str, tuple[str, str]]:
    """{SOP Instance UID: (series UID, Retrieve Location UID)} from the evidence; checks it matches the content."""
    [evidence] = kos.CurrentRequestedProcedureEvidenceSequence
    found = {}
    for item in evidence.ReferencedSeriesSequence:
        for ref in item.ReferencedSOPSequence:
            found[str(ref.ReferencedSOPInstanceUID)] = (str(item.SeriesInstanceUID), str(item.RetrieveLocationUID))
    content = {str(i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID) for i in kos.ContentSequence}
    assert content == set(found)
    return found


def rad69_call(esb: Platform, triples: list[tuple[str, str, str]], syntaxes: list[str], repository: str) -> Reply:
    """RAD-69 over SOAP 1.2 with MTOM, as an Imaging Document Consumer sends it."""
    payload = rad69.request(triples, syntaxes, repository_unique_id=repository)
    from lxml import etree

    body = envelope(etree.tostring(payload), action=rad69.ACTION_RAD69, to=esb.xdsi_url)
    content_type, data = mtom(body, [], action=rad69.ACTION_RAD69)
    answer = requests.post(esb.xdsi_url, data=data, headers={"Content-Type": content_type}, timeout=60)
    reply = parse_reply(answer.status_code, answer.headers, answer.content)
    assert reply.status == 200 and reply.fault is None, answer.text[:2000]
    return reply


def documents(reply: Reply) -> dict[str, Dataset]:
    """{DocumentUniqueId: the MTOM part read as DICOM} of a RAD-69 answer; asserts Success."""
    response = reply.payload
    assert response.find(q("rs", "RegistryResponse")).get("status") == ebxml.SUCCESS
    found: dict[str, Dataset] = {}
    for node in response.iterfind(q("xds", "DocumentResponse")):
        href = node.find(f"{q('xds', 'Document')}/{q('xop', 'Include')}").get("href")
        part = reply.parts[unquote(href[len("cid:") :])]
        assert node.findtext(q("xds", "mimeType")) == "application/dicom" == part.content_type
        found[str(node.findtext(q("xds", "DocumentUniqueId")))] = dcmread(io.BytesIO(part.data))
    return found


def test_a_stored_study_is_published_found_by_master_id_and_retrieved(esb: Platform, tmp_path: Path) -> None:
    client = XdsClient(esb)
    local_id = f"X{uuid.uuid4().hex[:8]}"
    master = esb.register_patient(local_id, "Roe^Richard")  # ITI-8, then the master ID by ITI-9
    study_uid = generate_uid()
    files = store_study(esb, tmp_path / "sent", local_id, 3, study_uid)
    sent = {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files}
    esb.wait_archived(study_uid, 3)

    # ITI-18 by the master ID: one DocumentEntry, the KOS
    [entry] = manifest_entry(client, master)
    assert (entry.get("mimeType"), format_code(entry)) == ("application/dicom", KOS_CLASS)
    assert identifier(entry, ebxml.DE_PATIENT_ID) == master
    assert _slot(entry, "sourcePatientId") == [f"{local_id}^^^&1.2.3.1&ISO"]

    # ITI-43: a KOS (Manifest) of this study and patient listing every instance
    kos = kos_of(client, entry)
    assert (kos.SOPClassUID, kos.Modality, kos.StudyInstanceUID) == (KOS_CLASS, "KO", study_uid)
    assert (kos.PatientID, kos.ConceptNameCodeSequence[0].CodeValue) == (local_id, "113030")
    references = listed(kos)
    assert sorted(references) == sorted(sent)
    [repository] = {location for _, location in references.values()}

    # RAD-69 at the Retrieve Location the KOS names: the instances as stored
    triples = [(str(study_uid), series_uid, uid) for uid, (series_uid, _) in references.items()]
    as_stored = documents(rad69_call(esb, triples, [ExplicitVRLittleEndian], repository))
    assert sorted(as_stored) == sorted(sent)
    for uid, ds in as_stored.items():
        same_instance(ds, sent[uid])
    # and transcoded to JPEG-LS lossless on request: the same pixels
    jpeg_ls = documents(rad69_call(esb, triples[:2], [JPEGLSLossless], repository))
    assert len(jpeg_ls) == 2
    for uid, ds in jpeg_ls.items():
        assert ds.file_meta.TransferSyntaxUID == JPEGLSLossless
        original = dcmread(sent[uid])
        assert np.array_equal(ds.pixel_array, original.pixel_array)


def test_one_more_instance_replaces_the_manifest(esb: Platform, tmp_path: Path) -> None:
    client = XdsClient(esb)
    local_id = f"R{uuid.uuid4().hex[:8]}"
    master = esb.register_patient(local_id)
    study_uid = generate_uid()
    first = store_study(esb, tmp_path / "first", local_id, 2, study_uid)
    esb.wait_archived(study_uid, 2)
    [old] = manifest_entry(client, master)

    late = store_study(esb, tmp_path / "late", local_id, 1, study_uid)  # a new series of the same study
    esb.wait_archived(study_uid, 3)
    [new] = manifest_entry(client, master)
    assert new.get("id") != old.get("id")
    [deprecated] = manifest_entry(client, master, DEPRECATED)
    assert deprecated.get("id") == old.get("id") and deprecated.get("status") == ebxml.DEPRECATED
    related = ok(client.query("GetAssociations", {"$uuid": listed_ids(new.get("id"))}))
    assert ("RPLC", new.get("id"), old.get("id")) in associations(related)
    expected = {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in first + late}
    assert set(listed(kos_of(client, new))) == expected
    assert len(listed(kos_of(client, old))) == 2


def test_a_study_that_came_before_its_patient_is_published_once_the_patient_is_registered(
    esb: Platform, tmp_path: Path
) -> None:
    client = XdsClient(esb)
    local_id = f"L{uuid.uuid4().hex[:8]}"
    study_uid = generate_uid()
    files = store_study(esb, tmp_path / "early", local_id, 2, study_uid)
    wait_for("the study to complete", lambda: esb.study_status(study_uid) == "complete")
    time.sleep(2.5)  # more ticks and a retry: still no patient to publish it for
    assert esb.study_status(study_uid) == "complete"
    master = esb.register_patient(local_id)  # the ADT comes late
    esb.wait_archived(study_uid, 2)
    [entry] = manifest_entry(client, master)
    assert set(listed(kos_of(client, entry))) == {str(dcmread(f).SOPInstanceUID) for f in files}
