"""STOW-RS over real HTTP: one exchange per instance, the Store Instances Response, partial failures."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.uid import UID, generate_uid

from esb.exchange import ATTACHMENTS_HEADER
from tests.adapters.dicomweb.archive_double import REFUSED_CLASS
from tests.adapters.dicomweb.conftest import MakeWeb, Web
from tests.dicom_support import SMALL_CT, series

JSON = "application/dicom+json"
# PS3.18 Table 10.5.3-3: Retrieve URL, Failed SOP Sequence, Referenced SOP Sequence, Failure Reason
RETRIEVE_URL, FAILED, REFERENCED, REASON = "00081190", "00081198", "00081199", "00081197"
SOP_CLASS, SOP_INSTANCE = "00081150", "00081155"


def multipart(contents: list[bytes], part_type: str = "application/dicom") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + content + b"\r\n" for content in contents
    )
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


async def stow(web: Web, body: bytes, content_type: str, path: str = "/studies") -> tuple[int, str, Any]:
    headers = {"Content-Type": content_type, "Accept": JSON}
    async with web.client.post(web.base + path, data=body, headers=headers) as answer:
        text = await answer.read()
        return answer.status, answer.headers["Content-Type"], json.loads(text) if text else None


def items(answer: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return list(answer.get(key, {}).get("Value", []))


def uid_of(item: dict[str, Any]) -> str | None:
    values = item[SOP_INSTANCE].get("Value")
    return values[0] if values else None


async def test_every_instance_stored_is_200_with_retrieve_urls(web: Web, tmp_path: Path) -> None:
    study = generate_uid()
    paths = series(tmp_path / "in", 2, study_uid=study, patient_id="P9", source=SMALL_CT)
    originals = [p.read_bytes() for p in paths]
    body, content_type = multipart(originals)
    status, answer_type, answer = await stow(web, body, content_type)
    assert status == 200 and answer_type == JSON
    assert answer[RETRIEVE_URL] == {"vr": "UR", "Value": [f"{web.base}/studies/{study}"]}
    assert FAILED not in answer
    referenced = items(answer, REFERENCED)
    uids = [dcmread(p).SOPInstanceUID for p in paths]
    assert [uid_of(i) for i in referenced] == uids
    ds = dcmread(paths[0])
    url = f"{web.base}/studies/{study}/series/{ds.SeriesInstanceUID}/instances/{uids[0]}"
    assert referenced[0][RETRIEVE_URL] == {"vr": "UR", "Value": [url]}
    assert referenced[0][SOP_CLASS] == {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}
    # stored byte for byte, through one exchange per instance
    assert [Path(str(web.archive.headers[u][0].storage_key)).read_bytes() for u in uids] == originals
    assert len(web.received) == 2  # handed over a few at a time: in any order
    exchange = next(e for e in web.received if e.headers["dicom-sop-instance-uid"] == uids[0])
    assert exchange.headers["dicom-calling-ae"] == "DICOMWEB" and exchange.headers["dicom-called-ae"] == "ESB"
    assert exchange.headers["dicom-sop-class-uid"] == "1.2.840.10008.5.1.4.1.1.2"
    assert exchange.headers["dicom-study-uid"] == study
    assert exchange.headers["dicom-series-uid"] == ds.SeriesInstanceUID
    assert exchange.headers["dicom-modality"] == "CT" and exchange.headers["dicom-patient-id"] == "P9"
    assert exchange.headers["dicom-transfer-syntax"] == "1.2.840.10008.1.2.1"
    assert exchange.headers["content-type"] == JSON
    header = json.loads(exchange.body)
    assert header["00100020"] == {"vr": "LO", "Value": ["P9"]} and "7FE00010" not in header
    (attachment,) = exchange.attachments
    assert attachment.content_type == "application/dicom" and attachment.content_id == uids[0]
    assert Path(str(attachment.path)).parent == web.spool
    assert json.loads(exchange.headers[ATTACHMENTS_HEADER]) == [
        {"cid": uids[0], "type": "application/dicom", "path": attachment.path}
    ]
    assert list(web.spool.iterdir()) == []  # the archive moved every spooled file into its store


async def test_good_and_corrupt_parts_are_a_202_partial_answer(web: Web, tmp_path: Path) -> None:
    study = generate_uid()
    good, truncated, refused, no_uid = series(tmp_path / "in", 4, study_uid=study, source=SMALL_CT)
    cut = truncated.read_bytes()[:-5000]
    ds = dcmread(refused)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(REFUSED_CLASS)
    ds.save_as(refused, enforce_file_format=True)
    ds = dcmread(no_uid)
    del ds.SeriesInstanceUID
    ds.save_as(no_uid, enforce_file_format=True)
    contents = [good.read_bytes(), b"this is no DICOM file" * 20, cut, refused.read_bytes(), no_uid.read_bytes()]
    body, content_type = multipart(contents)
    status, answer_type, answer = await stow(web, body, content_type)
    assert status == 202 and answer_type == JSON
    referenced, failed = items(answer, REFERENCED), items(answer, FAILED)
    assert [uid_of(i) for i in referenced] == [dcmread(good).SOPInstanceUID]
    reasons = [(uid_of(i), i[REASON]) for i in failed]
    assert reasons == [
        (None, {"vr": "US", "Value": [0xC000]}),  # not DICOM: nothing known of it
        (dcmread(truncated).SOPInstanceUID, {"vr": "US", "Value": [0xC000]}),  # cut short: refused before the route
        (dcmread(refused).SOPInstanceUID, {"vr": "US", "Value": [0x0122]}),  # the archive's DicomError status
        (dcmread(no_uid).SOPInstanceUID, {"vr": "US", "Value": [0xA900]}),
    ]
    assert failed[0][SOP_INSTANCE] == {"vr": "UI"}
    # the good one and the one the archive refused went through the route, the others were refused before
    assert sorted(e.headers["dicom-sop-instance-uid"] for e in web.received) == sorted(
        [dcmread(good).SOPInstanceUID, dcmread(refused).SOPInstanceUID]
    )
    assert list(web.archive.headers) == [dcmread(good).SOPInstanceUID]
    refused_uid = dcmread(refused).SOPInstanceUID
    failed_exchange = next(e for e in web.received if e.headers["dicom-sop-instance-uid"] == refused_uid)
    # a failed message keeps its file (the journal replays it); refused parts left nothing behind
    assert [p.name for p in web.spool.iterdir()] == [Path(str(failed_exchange.attachments[0].path)).name]


async def test_nothing_stored_is_409_and_another_study_is_refused(web: Web, tmp_path: Path) -> None:
    (path,) = series(tmp_path / "in", 1, source=SMALL_CT)
    body, content_type = multipart([path.read_bytes()])
    status, _, answer = await stow(web, body, content_type, f"/studies/{generate_uid()}")
    assert status == 409
    (failed,) = items(answer, FAILED)
    assert failed[REASON] == {"vr": "US", "Value": [0xC409]} and uid_of(failed) == dcmread(path).SOPInstanceUID
    assert REFERENCED not in answer and RETRIEVE_URL not in answer and web.received == []
    status, _, answer = await stow(web, body, content_type, f"/studies/{dcmread(path).StudyInstanceUID}")
    assert status == 200 and len(items(answer, REFERENCED)) == 1
    body, content_type = multipart([b"junk"], part_type="text/plain")
    status, _, answer = await stow(web, body, content_type)
    assert status == 409 and items(answer, FAILED)[0][REASON]["Value"] == [0xC000]


async def test_requests_refused_as_a_whole(make_web: MakeWeb, tmp_path: Path) -> None:
    web = await make_web(max_body="100000")
    (path,) = series(tmp_path / "in", 1, source=SMALL_CT)
    data = path.read_bytes()
    body, content_type = multipart([data])
    status, answer_type, answer = await stow(web, data, "application/dicom")
    assert status == 415 and answer_type == "application/json" and "multipart/related" in answer["error"]
    status, _, _ = await stow(web, body, content_type.replace("application/dicom", "application/dicom+json"))
    assert status == 415
    status, _, answer = await stow(web, body[:-30], content_type)  # no close delimiter
    assert status == 400 and "malformed" in answer["error"]
    status, _, answer = await stow(web, body, 'multipart/related; type="application/dicom"; boundary=nothere')
    assert status == 400
    status, _, answer = await stow(web, *multipart([]))
    assert status == 400 and "no instances" in answer["error"]
    big, big_type = multipart([data] * 3)
    status, _, answer = await stow(web, big, big_type)
    assert status == 413 and "100000 bytes" in answer["error"]
    xml = {"Content-Type": content_type, "Accept": "application/dicom+xml"}
    async with web.client.post(web.base + "/studies", data=body, headers=xml) as got:
        assert got.status == 406
    async with web.client.post(web.base + "/series", data=body, headers={"Content-Type": content_type}) as got:
        assert got.status == 405 and got.headers["Allow"] == "GET, HEAD"
    assert not web.spool.exists() or list(web.spool.iterdir()) == []
    assert web.received == []
