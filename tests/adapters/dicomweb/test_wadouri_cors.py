"""WADO-URI (PS3.18 9) and CORS (preflight, allowed and refused origins) over real HTTP."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.adapters.dicomweb.conftest import VIEWER, MakeWeb, Web
from tests.adapters.dicomweb.test_stow import multipart
from tests.dicom_support import SMALL_CT, series


@dataclass
class Objects:
    study: str
    ct: tuple[str, str]
    j2k: tuple[str, str]
    multiframe: tuple[str, str]


@pytest.fixture
def objects(web: Web, tmp_path: Path) -> Objects:
    study, ct_series, j2k_series, mf_series = (generate_uid() for _ in range(4))
    (ct,) = web.load(tmp_path / "ct", 1, study_uid=study, series_uid=ct_series, source=SMALL_CT)
    (j2k,) = web.load(tmp_path / "j2k", 1, study_uid=study, series_uid=j2k_series, source="JPEG2000.dcm")
    (mf,) = web.load(tmp_path / "mf", 1, study_uid=study, series_uid=mf_series, source="emri_small.dcm")
    return Objects(study, (ct_series, ct), (j2k_series, j2k), (mf_series, mf))


async def wado(web: Web, objects: Objects, which: tuple[str, str], query: str = "") -> tuple[int, str, bytes]:
    url = f"{web.base}/wado?requestType=WADO&studyUID={objects.study}&seriesUID={which[0]}&objectUID={which[1]}"
    async with web.client.get(url + query) as answer:
        return answer.status, answer.headers.get("Content-Type", ""), await answer.read()


def stored(web: Web, uid: str) -> bytes:
    return Path(str(web.archive.headers[uid][0].storage_key)).read_bytes()


async def test_wado_uri_dicom_and_images(web: Web, objects: Objects) -> None:
    status, content_type, body = await wado(web, objects, objects.ct, "&contentType=application/dicom")
    assert status == 200 and content_type == "application/dicom" and body == stored(web, objects.ct[1])
    status, content_type, body = await wado(web, objects, objects.ct)
    assert status == 200 and content_type == "image/jpeg" and Image.open(io.BytesIO(body)).size == (128, 128)
    query = "&contentType=image/png&rows=64&windowCenter=40&windowWidth=400"
    status, content_type, body = await wado(web, objects, objects.ct, query)
    assert status == 200 and content_type == "image/png" and Image.open(io.BytesIO(body)).size == (64, 64)
    query = "&contentType=image/gif,image/png&frameNumber=3"
    status, content_type, body = await wado(web, objects, objects.multiframe, query)
    assert status == 200 and content_type == "image/png"
    assert np.asarray(Image.open(io.BytesIO(body))).std() > 0


async def test_wado_uri_transfer_syntax(web: Web, objects: Objects) -> None:
    query = "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.1"
    status, content_type, body = await wado(web, objects, objects.j2k, query)
    assert status == 200 and content_type == "application/dicom"
    sent = dcmread(io.BytesIO(body))
    assert sent.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and sent.SOPInstanceUID == objects.j2k[1]
    assert np.array_equal(sent.pixel_array, dcmread(io.BytesIO(stored(web, objects.j2k[1]))).pixel_array)
    query = "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.4.91"
    status, _, body = await wado(web, objects, objects.j2k, query)
    assert status == 200 and body == stored(web, objects.j2k[1])
    query = "&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.4.80"
    status, _, _ = await wado(web, objects, objects.ct, query)
    assert status == 406


@pytest.mark.parametrize(
    ("query", "status", "complaint"),
    [
        ("studyUID=1.2&seriesUID=1.2&objectUID=1.2", 400, "requestType must be WADO"),
        ("requestType=WADO&studyUID=1.2&seriesUID=1.2", 400, "objectUID missing"),
        ("requestType=WADO&studyUID=1.2&seriesUID=1.2&objectUID=1.2", 404, "no such instance"),
        ("requestType=WADO&studyUID=1.2&seriesUID=1.2&objectUID=1.2&contentType=text/html", 406, "contentType"),
        ("requestType=WADO&studyUID=1.2&seriesUID=1.2&objectUID=1.2&anonymize=yes", 400, "anonymize"),
    ],
)
async def test_wado_uri_errors(web: Web, objects: Objects, query: str, status: int, complaint: str) -> None:
    async with web.client.get(f"{web.base}/wado?{query}") as answer:
        assert answer.status == status and answer.headers["Content-Type"] == "application/json"
        assert complaint in (await answer.json())["error"]


async def test_wado_uri_bad_rendering_parameters(web: Web, objects: Objects) -> None:
    for query, status in (("&windowCenter=40", 400), ("&rows=0", 400), ("&imageQuality=500", 400),
                          ("&frameNumber=11", 404), ("&frameNumber=x", 400)):  # fmt: skip
        got, content_type, _ = await wado(web, objects, objects.multiframe, query)
        assert (got, content_type) == (status, "application/json"), query


# -- CORS --------------------------------------------------------------------------------


async def test_cors_for_an_allowed_origin(web: Web, objects: Objects) -> None:
    async with web.client.get(f"{web.base}/studies", headers={"Origin": VIEWER}) as answer:
        assert answer.status == 200
        assert answer.headers["Access-Control-Allow-Origin"] == VIEWER
        assert "Warning" in answer.headers["Access-Control-Expose-Headers"]
        assert answer.headers["Vary"] == "Origin"
    async with web.client.get(f"{web.base}/studies/{generate_uid()}", headers={"Origin": VIEWER}) as answer:
        assert answer.status == 404 and answer.headers["Access-Control-Allow-Origin"] == VIEWER
    async with web.client.get(f"{web.base}/studies", headers={"Origin": "https://evil.example.com"}) as answer:
        assert answer.status == 200 and "Access-Control-Allow-Origin" not in answer.headers
        assert answer.headers["Vary"] == "Origin"


async def test_cors_preflight(web: Web) -> None:
    asked = {
        "Origin": VIEWER,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "accept, authorization",
    }
    async with web.client.options(f"{web.base}/studies/1.2.3/series/4.5/instances/6.7/frames/1", headers=asked) as got:
        assert got.status == 204
        assert got.headers["Access-Control-Allow-Origin"] == VIEWER
        assert got.headers["Access-Control-Allow-Methods"] == "GET, HEAD, POST, OPTIONS"
        assert got.headers["Access-Control-Allow-Headers"] == "accept, authorization"
        assert got.headers["Access-Control-Max-Age"] == "600"
    refused = {**asked, "Origin": "https://evil.example.com"}
    async with web.client.options(f"{web.base}/studies", headers=refused) as got:
        assert got.status == 403 and "Access-Control-Allow-Origin" not in got.headers
        assert "option cors" in json.loads(await got.read())["error"]
    async with web.client.options(f"{web.base}/studies") as got:
        assert got.status == 204 and got.headers["Allow"] == "GET, HEAD, POST, OPTIONS"


async def test_cors_any_origin_and_none(make_web: MakeWeb) -> None:
    anyone = await make_web(cors="*")
    async with anyone.client.get(f"{anyone.base}/studies", headers={"Origin": "https://a.example"}) as answer:
        assert answer.headers["Access-Control-Allow-Origin"] == "*" and "Vary" not in answer.headers
    nobody = await make_web(cors="")
    preflight = {"Origin": VIEWER, "Access-Control-Request-Method": "POST"}
    async with nobody.client.options(f"{nobody.base}/studies", headers=preflight) as answer:
        assert answer.status == 403 and "Access-Control-Allow-Origin" not in answer.headers
    async with nobody.client.get(f"{nobody.base}/studies", headers={"Origin": VIEWER}) as answer:
        assert answer.status == 204 and "Access-Control-Allow-Origin" not in answer.headers


async def test_stow_answer_carries_cors(web: Web, tmp_path: Path) -> None:
    (path,) = series(tmp_path / "in", 1, source=SMALL_CT)
    body, content_type = multipart([path.read_bytes()])
    headers = {"Content-Type": content_type, "Origin": VIEWER}
    async with web.client.post(f"{web.base}/studies", data=body, headers=headers) as answer:
        assert answer.status == 200 and answer.headers["Access-Control-Allow-Origin"] == VIEWER
