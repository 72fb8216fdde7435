"""Acceptance, DICOMweb through the shipped dicomweb route: QIDO-RS, WADO-RS metadata and frames, STOW-RS.

The study arrives by C-STORE (storescu into dicom-in): a web viewer sees what
the modality sent. The frames asked for are what a Cornerstone3D viewer asks
for: raw frames of an uncompressed image as stored, and a JPEG-LS image's
frame decoded to the default (Explicit VR Little Endian) pixels.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import requests
from pydicom import dcmread
from pydicom.uid import generate_uid
from requests_toolbelt.multipart.decoder import MultipartDecoder  # type: ignore[import-untyped]

from tests.dicom_e2e.harness import HIS_NAMESPACE, MODALITY_AE, Platform, same_instance
from tests.dicom_support import series

JPEG_LS = "MR_small_jpeg_ls_lossless.dcm"
DICOM_JSON = "application/dicom+json"


def stored_study(esb: Platform, directory: Path) -> tuple[str, list[Path]]:
    """A CT series of 2 and a JPEG-LS MR series of 1, stored by storescu; the Study UID and files."""
    study = generate_uid()
    patient = f"W{uuid.uuid4().hex[:8]}"
    ct = series(directory, 2, patient_id=patient, issuer=HIS_NAMESPACE, study_uid=study, accession="ACC-WEB")
    mr = series(directory, 1, patient_id=patient, issuer=HIS_NAMESPACE, study_uid=study, accession="ACC-WEB",
                source=JPEG_LS)  # fmt: skip
    for files, propose in ((ct, "-xe"), (mr, "-xt")):
        done = esb.scu("storescu", "-R", propose, "-aet", MODALITY_AE, files=files)
        assert done.returncode == 0, done.stderr
    return study, ct + mr


def get_json(url: str, **params: str) -> list[dict[str, dict[str, list[object]]]]:
    answer = requests.get(url, params=params, headers={"Accept": DICOM_JSON}, timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(DICOM_JSON), answer.text[:500]
    found: list[dict[str, dict[str, list[object]]]] = answer.json()
    return found


def value(item: dict[str, dict[str, list[object]]], tag: str) -> object:
    return item[tag]["Value"][0]


def parts(answer: requests.Response) -> list[tuple[str, bytes]]:
    assert answer.status_code == 200, answer.text[:500]
    decoded = MultipartDecoder(answer.content, answer.headers["Content-Type"]).parts
    return [(p.headers[b"Content-Type"].decode(), bytes(p.content)) for p in decoded]


def test_qido_finds_the_study_and_wado_serves_series_metadata_and_frames(esb: Platform, tmp_path: Path) -> None:
    study, files = stored_study(esb, tmp_path / "sent")
    ct_series = str(dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    patient = str(dcmread(files[0], stop_before_pixels=True).PatientID)

    # QIDO-RS: by patient, then the study's series and instances
    [found] = get_json(f"{esb.dicomweb}/studies", PatientID=patient, includefield="NumberOfStudyRelatedInstances")
    assert (value(found, "0020000D"), value(found, "00201208"), value(found, "00080050")) == (study, 3, "ACC-WEB")
    assert sorted(str(value(s, "00080060")) for s in get_json(f"{esb.dicomweb}/studies/{study}/series")) == ["CT", "MR"]
    listed = get_json(f"{esb.dicomweb}/studies/{study}/series/{ct_series}/instances")
    sop_uids = {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID): f for f in files[:2]}
    assert {value(i, "00080018") for i in listed} == set(sop_uids)

    # WADO-RS series metadata: every instance, pixel data as a bulk data URI
    metadata = get_json(f"{esb.dicomweb}/studies/{study}/series/{ct_series}/metadata")
    assert {value(m, "00080018") for m in metadata} == set(sop_uids)
    for item in metadata:
        assert "BulkDataURI" in item["7FE00010"] and "Value" not in item["7FE00010"]
        assert (value(item, "00100020"), value(item, "00280010")) == (patient, 128)

    # WADO-RS frame of the uncompressed CT, as stored
    uid, path = next(iter(sop_uids.items()))
    url = f"{esb.dicomweb}/studies/{study}/series/{ct_series}/instances/{uid}/frames/1"
    accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    [(content_type, frame)] = parts(requests.get(url, headers={"Accept": accept}, timeout=30))
    assert content_type.startswith("application/octet-stream") and frame == dcmread(path).PixelData
    # the JPEG-LS MR's frame, decoded to native pixels for a viewer without the codec
    mr = dcmread(files[2])
    url = f"{esb.dicomweb}/studies/{study}/series/{mr.SeriesInstanceUID}/instances/{mr.SOPInstanceUID}/frames/1"
    [(_, native)] = parts(requests.get(url, headers={"Accept": 'multipart/related; type="application/octet-stream"'},
                                       timeout=30))  # fmt: skip
    assert np.array_equal(np.frombuffer(native, dtype=mr.pixel_array.dtype).reshape(mr.pixel_array.shape),
                          mr.pixel_array)  # fmt: skip


def test_stow_rs_stores_an_instance_into_the_archive(esb: Platform, tmp_path: Path) -> None:
    study, files = stored_study(esb, tmp_path / "first")
    patient = str(dcmread(files[0], stop_before_pixels=True).PatientID)
    [extra] = series(tmp_path / "stow", 1, patient_id=patient, issuer=HIS_NAMESPACE, study_uid=study)
    extra_ds = dcmread(extra, stop_before_pixels=True)
    boundary = f"stow-{uuid.uuid4().hex}"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + extra.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode())  # fmt: skip
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    answer = requests.post(f"{esb.dicomweb}/studies/{study}", data=body,
                           headers={"Content-Type": content_type, "Accept": DICOM_JSON}, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text[:500]
    [reference] = answer.json()["00081199"]["Value"]
    assert value(reference, "00081155") == extra_ds.SOPInstanceUID
    assert str(value(reference, "00081190")).startswith(f"{esb.dicomweb}/studies/{study}/series/")

    # in the archive, found by QIDO-RS and served back by WADO-RS as sent
    [found] = get_json(f"{esb.dicomweb}/studies", StudyInstanceUID=study)
    assert value(found, "00201208") == len(files) + 1
    url = f"{esb.dicomweb}/studies/{study}/series/{extra_ds.SeriesInstanceUID}/instances/{extra_ds.SOPInstanceUID}"
    [(content_type, data)] = parts(requests.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'},
                                                timeout=30))  # fmt: skip
    assert content_type.startswith("application/dicom")
    same_instance(data, extra)
