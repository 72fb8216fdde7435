"""WADO-RS over real HTTP: instances, metadata with bulk data, frames, rendered and thumbnails.

Multipart answers are split by requests-toolbelt; the bytes are compared with
the stored files and with what pydicom reads from them.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from esb.errors import DicomError
from tests.adapters.dicomweb.conftest import Web, parts
from tests.dicom_support import LARGE_CT, SMALL_CT, series

EXPLICIT = "1.2.840.10008.1.2.1"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
DICOM_PARTS = 'multipart/related; type="application/dicom"'
OCTET_PARTS = 'multipart/related; type="application/octet-stream"'


@dataclass
class Data:
    study: str
    ct_series: str
    ct: list[str]
    j2k_series: str
    j2k: str
    frames_study: str
    native_mf: tuple[str, str]
    j2k_mf: tuple[str, str]


def _with_bulk(path: Path) -> None:
    """Give an instance a large overlay and an icon image, so its metadata has bulk data outside pixel data."""
    ds = dcmread(path)
    ds.add_new(0x60003000, "OW", bytes(range(256)) * 16)
    icon = Dataset()
    icon.Rows, icon.Columns, icon.SamplesPerPixel, icon.BitsAllocated = 8, 8, 1, 8
    icon.add_new(0x7FE00010, "OB", b"\x07" * 64)
    ds.IconImageSequence = [icon]
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def data(web: Web, tmp_path: Path) -> Data:
    study, ct_series, j2k_series, frames_study = (generate_uid() for _ in range(4))
    ct_paths = series(tmp_path / "ct", 3, study_uid=study, series_uid=ct_series, source=SMALL_CT)
    _with_bulk(ct_paths[0])
    ct = [web.archive.store(p).instance.sop_instance_uid for p in ct_paths]
    (j2k,) = web.load(tmp_path / "j2k", 1, study_uid=study, series_uid=j2k_series, source="JPEG2000.dcm")
    native_series, j2k_mf_series = generate_uid(), generate_uid()
    (native,) = web.load(tmp_path / "mf", 1, study_uid=frames_study, series_uid=native_series, source="emri_small.dcm")
    (compressed,) = web.load(
        tmp_path / "mfj", 1, study_uid=frames_study, series_uid=j2k_mf_series, source="emri_small_jpeg_2k_lossless.dcm"
    )
    native_mf, j2k_mf = (native_series, native), (j2k_mf_series, compressed)
    return Data(study, ct_series, ct, j2k_series, j2k, frames_study, native_mf, j2k_mf)


async def fetch(web: Web, path: str, accept: str | None = None) -> tuple[int, str, bytes]:
    headers = {"Accept": accept} if accept else {}
    async with web.client.get(web.base + path, headers=headers) as answer:
        return answer.status, answer.headers.get("Content-Type", ""), await answer.read()


def stored(web: Web, uid: str) -> bytes:
    return Path(str(web.archive.headers[uid][0].storage_key)).read_bytes()


def instance_path(data: Data, uid: str, series_uid: str | None = None) -> str:
    return f"/studies/{data.study}/series/{series_uid or data.ct_series}/instances/{uid}"


# -- instances ---------------------------------------------------------------------------


async def test_instance_series_and_study_retrieve_stream_the_stored_files(web: Web, data: Data) -> None:
    status, content_type, body = await fetch(web, instance_path(data, data.ct[1]), DICOM_PARTS)
    assert status == 200 and content_type.startswith(f"{DICOM_PARTS}; boundary=")
    ((headers, content),) = parts(body, content_type)
    assert headers["Content-Type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    assert headers["Content-Location"] == web.base + instance_path(data, data.ct[1])
    assert content == stored(web, data.ct[1])

    status, content_type, body = await fetch(web, f"/studies/{data.study}/series/{data.ct_series}", DICOM_PARTS)
    assert status == 200 and [c for _, c in parts(body, content_type)] == [stored(web, u) for u in data.ct]

    status, content_type, body = await fetch(web, f"/studies/{data.study}", f"{DICOM_PARTS}; transfer-syntax=*")
    got = parts(body, content_type)
    assert status == 200 and len(got) == 4
    by_content = {c: h["Content-Type"] for h, c in got}
    assert by_content[stored(web, data.j2k)] == f"application/dicom; transfer-syntax={J2K}"
    assert all(by_content[stored(web, u)] == f"application/dicom; transfer-syntax={EXPLICIT}" for u in data.ct)


async def test_default_transfer_syntax_decodes_compressed_instances(web: Web, data: Data) -> None:
    path = instance_path(data, data.j2k, data.j2k_series)
    status, content_type, body = await fetch(web, path, DICOM_PARTS)
    ((headers, content),) = parts(body, content_type)
    assert status == 200 and headers["Content-Type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    sent, original = dcmread(io.BytesIO(content)), dcmread(io.BytesIO(stored(web, data.j2k)))
    assert sent.file_meta.TransferSyntaxUID == EXPLICIT and sent.SOPInstanceUID == data.j2k
    assert np.array_equal(sent.pixel_array, original.pixel_array)
    status, content_type, body = await fetch(web, path, f"{DICOM_PARTS}; transfer-syntax={J2K}")
    assert status == 200 and parts(body, content_type)[0][1] == stored(web, data.j2k)


async def test_single_part_instance_and_not_acceptable_requests(web: Web, data: Data) -> None:
    status, content_type, body = await fetch(web, instance_path(data, data.ct[0]), "application/dicom")
    assert status == 200 and content_type == f"application/dicom; transfer-syntax={EXPLICIT}"
    assert body == stored(web, data.ct[0])
    status, content_type, body = await fetch(web, f"/studies/{data.study}", "application/dicom")
    assert status == 406 and content_type == "application/json" and "Accept" in json.loads(body)["error"]
    jpeg_ls = f"{DICOM_PARTS}; transfer-syntax=1.2.840.10008.1.2.4.80"
    status, _, _ = await fetch(web, instance_path(data, data.ct[0]), jpeg_ls)
    assert status == 406
    status, content_type, body = await fetch(web, instance_path(data, data.ct[0]), f"{jpeg_ls}, {DICOM_PARTS};q=0.5")
    assert status == 200 and parts(body, content_type)[0][1] == stored(web, data.ct[0])


async def test_unknown_resources_are_404(web: Web, data: Data) -> None:
    for path in (f"/studies/{generate_uid()}", instance_path(data, generate_uid()), f"/studies/{data.study}/nothing"):
        status, content_type, body = await fetch(web, path)
        assert status == 404 and content_type == "application/json", path
        assert json.loads(body)["error"]


# -- metadata and bulk data --------------------------------------------------------------


async def test_series_metadata_with_bulk_data_uris(web: Web, data: Data) -> None:
    status, content_type, body = await fetch(web, f"/studies/{data.study}/series/{data.ct_series}/metadata")
    assert status == 200 and content_type == "application/dicom+json"
    found = json.loads(body)
    assert [i["00080018"]["Value"][0] for i in found] == data.ct
    first = found[0]
    url = web.base + instance_path(data, data.ct[0])
    assert first["7FE00010"] == {"vr": "OW", "BulkDataURI": f"{url}/bulkdata/7FE00010"}
    assert first["60003000"] == {"vr": "OW", "BulkDataURI": f"{url}/bulkdata/60003000"}
    icon = first["00880200"]["Value"][0]
    assert icon["7FE00010"] == {"vr": "OB", "BulkDataURI": f"{url}/bulkdata/00880200/0/7FE00010"}
    assert first["00083002"] == {"vr": "UI", "Value": [EXPLICIT]}
    assert first["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Test^Patient"}]}
    assert first["00280010"] == {"vr": "US", "Value": [128]}
    assert "60003000" not in found[1]

    original = dcmread(io.BytesIO(stored(web, data.ct[0])))
    for uri, expected in (
        (first["60003000"]["BulkDataURI"], original[0x60003000].value),
        (icon["7FE00010"]["BulkDataURI"], b"\x07" * 64),
        (first["7FE00010"]["BulkDataURI"], original.PixelData),
    ):
        async with web.client.get(uri, headers={"Accept": OCTET_PARTS}) as answer:
            assert answer.status == 200
            content_type = answer.headers["Content-Type"]
            assert content_type.startswith(f"{OCTET_PARTS}; boundary=")
            ((headers, content),) = parts(await answer.read(), content_type)
        assert content == expected and headers["Content-Type"].startswith("application/octet-stream")


async def test_study_and_instance_metadata_and_406(web: Web, data: Data) -> None:
    status, _, body = await fetch(web, f"/studies/{data.study}/metadata", "application/dicom+json")
    found = json.loads(body)
    assert status == 200 and len(found) == 4
    j2k = next(i for i in found if i["00080018"]["Value"] == [data.j2k])
    assert j2k["7FE00010"]["vr"] == "OB" and j2k["00083002"]["Value"] == [J2K]
    status, _, body = await fetch(web, instance_path(data, data.ct[2]) + "/metadata")
    assert status == 200 and [i["00080018"]["Value"][0] for i in json.loads(body)] == [data.ct[2]]
    xml = 'multipart/related; type="application/dicom+xml"'
    status, _, _ = await fetch(web, f"/studies/{data.study}/metadata", xml)
    assert status == 406
    for tail in ("/bulkdata/00100010", "/bulkdata/zz", "/bulkdata/60003000/1"):
        status, _, _ = await fetch(web, instance_path(data, data.ct[0]) + tail)
        assert status == 404, tail


def clones(source: Path, directory: Path, count: int) -> list[Path]:
    """``count`` copies of ``source`` with their own SOP Instance UID, patched in place (same length), fast."""
    data = source.read_bytes()
    uid = dcmread(source, stop_before_pixels=True).SOPInstanceUID.encode()
    directory.mkdir()
    paths = []
    for number in range(count):
        fresh = f"{uid.decode()[: len(uid) - 6]}{number:06d}".encode()
        path = directory / f"{number}.dcm"
        path.write_bytes(data.replace(uid, fresh))
        paths.append(path)
    return paths


async def test_series_metadata_of_300_instances_opens_each_once(web: Web, data: Data, tmp_path: Path) -> None:
    """Each instance opened once, headers only (pixel data skipped). How fast: bench/dicom.py dicomweb-frames."""
    series_uid = generate_uid()
    (template,) = series(tmp_path / "one", 1, study_uid=data.study, series_uid=series_uid, source=LARGE_CT)
    for path in clones(template, tmp_path / "big", 300):
        web.archive.store(path)
    web.archive.opened = 0
    status, _, body = await fetch(web, f"/studies/{data.study}/series/{series_uid}/metadata")
    found = json.loads(body)
    assert status == 200 and len(found) == 300 and len({i["00080018"]["Value"][0] for i in found}) == 300
    assert web.archive.opened == 300
    assert all("InlineBinary" not in instance.get("7FE00010", {}) for instance in found)  # pixels: a BulkDataURI


# -- frames ------------------------------------------------------------------------------


def frames_path(data: Data, which: tuple[str, str], numbers: str) -> str:
    return f"/studies/{data.frames_study}/series/{which[0]}/instances/{which[1]}/frames/{numbers}"


async def test_native_frames_are_sliced_from_the_file(web: Web, data: Data) -> None:
    status, content_type, body = await fetch(web, frames_path(data, data.native_mf, "2,5"), OCTET_PARTS)
    assert status == 200 and content_type.startswith(f"{OCTET_PARTS}; boundary=")
    got = parts(body, content_type)
    expected = dcmread(io.BytesIO(stored(web, data.native_mf[1]))).pixel_array
    assert [h["Content-Type"] for h, _ in got] == [f"application/octet-stream; transfer-syntax={EXPLICIT}"] * 2
    assert [c for _, c in got] == [expected[1].tobytes(), expected[4].tobytes()]
    assert got[0][0]["Content-Location"].endswith(f"/instances/{data.native_mf[1]}/frames/2")


async def test_compressed_frames_keep_their_encoding(web: Web, data: Data) -> None:
    original = dcmread(io.BytesIO(stored(web, data.j2k_mf[1])))
    encoded = list(generate_frames(original.PixelData, number_of_frames=10))
    status, content_type, body = await fetch(web, frames_path(data, data.j2k_mf, "1,10"))
    assert status == 200 and content_type.startswith('multipart/related; type="image/jp2"; boundary=')
    got = parts(body, content_type)
    assert [h["Content-Type"] for h, _ in got] == [f"image/jp2; transfer-syntax={J2K_LOSSLESS}"] * 2
    assert [c for _, c in got] == [encoded[0], encoded[9]]

    anything = f"{OCTET_PARTS}; transfer-syntax=*"
    status, content_type, body = await fetch(web, frames_path(data, data.j2k_mf, "3"), anything)
    ((headers, content),) = parts(body, content_type)
    assert headers["Content-Type"] == f"application/octet-stream; transfer-syntax={J2K_LOSSLESS}"
    assert content == encoded[2]

    status, content_type, body = await fetch(web, frames_path(data, data.j2k_mf, "3"), OCTET_PARTS)
    ((headers, content),) = parts(body, content_type)
    assert headers["Content-Type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
    assert content == original.pixel_array[2].tobytes()

    status, _, _ = await fetch(web, frames_path(data, data.j2k_mf, "3"), 'multipart/related; type="image/jls"')
    assert status == 406


@pytest.mark.parametrize(("numbers", "status"), [("11", 404), ("0", 400), ("1,x", 400)])
async def test_frame_numbers_out_of_range_or_malformed(web: Web, data: Data, numbers: str, status: int) -> None:
    got, content_type, body = await fetch(web, frames_path(data, data.native_mf, numbers))
    assert got == status and content_type == "application/json" and json.loads(body)["error"]


# -- rendered and thumbnails -------------------------------------------------------------


def image(body: bytes) -> Any:
    return Image.open(io.BytesIO(body))


async def test_rendered_instance_and_frame(web: Web, data: Data) -> None:
    status, content_type, body = await fetch(web, instance_path(data, data.ct[0]) + "/rendered")
    assert status == 200 and content_type == "image/jpeg"
    assert image(body).format == "JPEG" and image(body).size == (128, 128)
    status, content_type, body = await fetch(web, instance_path(data, data.ct[0]) + "/rendered", "image/png")
    assert status == 200 and content_type == "image/png" and image(body).size == (128, 128)
    query = "?window=40,400,linear&viewport=64,32&quality=50"
    status, content_type, body = await fetch(web, instance_path(data, data.ct[0]) + "/rendered" + query, "image/*")
    assert status == 200 and content_type == "image/jpeg" and image(body).size == (32, 32)
    status, content_type, body = await fetch(web, frames_path(data, data.j2k_mf, "4") + "/rendered", "image/png")
    assert status == 200 and image(body).size == (64, 64)
    frame = np.asarray(image(body))
    assert frame.std() > 0  # an image, not a blank


async def test_rendered_errors(web: Web, data: Data) -> None:
    path = instance_path(data, data.ct[0]) + "/rendered"
    status, _, _ = await fetch(web, path, "text/html")
    assert status == 406
    for query in ("?window=40", "?window=40,0", "?viewport=0,10", "?quality=101", "?window=1,2,cubic"):
        status, content_type, body = await fetch(web, path + query)
        assert status == 400 and content_type == "application/json", query
    status, _, _ = await fetch(web, frames_path(data, data.native_mf, "1,2") + "/rendered")
    assert status == 400


async def test_thumbnails_of_study_series_instance_and_frame(web: Web, data: Data) -> None:
    for path in (
        f"/studies/{data.study}/thumbnail",
        f"/studies/{data.study}/series/{data.ct_series}/thumbnail",
        instance_path(data, data.j2k, data.j2k_series) + "/thumbnail",
        frames_path(data, data.native_mf, "3") + "/thumbnail",
    ):
        status, content_type, body = await fetch(web, path)
        assert status == 200 and content_type == "image/jpeg", path
        assert max(image(body).size) == 128, path
    status, _, body = await fetch(web, instance_path(data, data.j2k, data.j2k_series) + "/thumbnail?viewport=50,50")
    assert image(body).size == (12, 50)  # 256 x 1024 fitted in 50 x 50: 12.5 rounds to even


async def test_head_answers_headers_only_and_other_methods_are_405(web: Web, data: Data) -> None:
    url = web.base + instance_path(data, data.ct[0])
    for target, content_type in (
        (url, DICOM_PARTS),
        (f"{url}/metadata", "application/dicom+json"),
        (f"{url}/rendered", "image/jpeg"),
        (f"{url}/frames/1", OCTET_PARTS),
        (f"{web.base}/wado?requestType=WADO&studyUID={data.study}&seriesUID={data.ct_series}&objectUID={data.ct[0]}"
         "&contentType=application/dicom", "application/dicom"),
    ):  # fmt: skip
        async with web.client.head(target) as answer:
            assert answer.status == 200 and answer.headers["Content-Type"].startswith(content_type), target
            assert await answer.read() == b""
    async with web.client.head(web.base + instance_path(data, generate_uid())) as answer:
        assert answer.status == 404
    async with web.client.put(url, data=b"x") as answer:
        assert answer.status == 405 and answer.headers["Allow"] == "GET, HEAD, POST, OPTIONS"


async def test_archive_failures_are_http_answers_and_a_broken_stream(
    web: Web, data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(*args: Any, **kwargs: Any) -> Any:
        raise DicomError("the archive index is unavailable", status=0xA700)

    def refuses(*args: Any, **kwargs: Any) -> Any:
        raise DicomError("cannot process the query", status=0xC310)

    monkeypatch.setattr(web.archive, "find", busy)
    status, content_type, body = await fetch(web, "/studies")
    assert status == 503 and content_type == "application/json" and "unavailable" in json.loads(body)["error"]
    monkeypatch.setattr(web.archive, "find", refuses)
    status, _, body = await fetch(web, "/studies")
    assert status == 400 and "cannot be answered" in json.loads(body)["error"]

    real_open = web.archive.open
    opened: list[str] = []

    def open_once(ref: Any) -> Any:
        opened.append(ref.sop_instance_uid)
        if len(opened) > 1:
            raise DicomError("the instance's bytes are gone", status=0xA702)
        return real_open(ref)

    monkeypatch.setattr(web.archive, "open", open_once)
    async with web.client.get(f"{web.base}/studies/{data.study}/series/{data.ct_series}") as answer:
        assert answer.status == 200  # the first part was on its way when the second failed
        with pytest.raises(aiohttp.ClientPayloadError):
            await answer.read()
    opened.clear()
    opened.append("first")
    status, _, body = await fetch(web, instance_path(data, data.ct[0]) + "/metadata")
    assert status == 503 and "bytes are gone" in json.loads(body)["error"]
