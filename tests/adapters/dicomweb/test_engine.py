"""End to end: the shipped routes/dicomweb.yaml on a started engine with the real service:dicom-archive.

STOW-RS goes through the journal and the route (store: metadata, the spooled
file moved into the archive's store); QIDO-RS, WADO-RS and WADO-URI read the
real archive (its SQL index pages QIDO results itself). Runs on SQLite and,
with ESB_TEST_PG_URL, on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import UID, generate_uid

from esb.journal import admin
from esb.runtime.engine import Engine
from esb.settings import PACKAGE_ROOT
from tests.adapters.dicomweb.conftest import parts
from tests.adapters.dicomweb.test_stow import FAILED, REASON, REFERENCED, multipart
from tests.dicom_support import SMALL_CT, series
from tests.support import StartEngine

DICOM_PARTS = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@pytest.fixture
async def engine(start_engine: StartEngine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("ESB_LISTEN_HOST", "127.0.0.1")
    monkeypatch.setenv("ESB_HTTP_PORT", "0")
    (tmp_path / "routes").mkdir()
    shutil.copy(PACKAGE_ROOT / "routes" / "dicomweb.yaml", tmp_path / "routes" / "dicomweb.yaml")
    return await start_engine(db_url=db_url)


async def test_stow_query_and_retrieve_through_the_shipped_route(engine: Engine, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{engine.http_port}/dicomweb"
    study, series_uid = generate_uid(), generate_uid()
    paths = series(tmp_path / "in", 3, study_uid=study, series_uid=series_uid, patient_id="W1", source=SMALL_CT)
    uids = [str(dcmread(p).SOPInstanceUID) for p in paths]
    originals = [p.read_bytes() for p in paths]
    async with aiohttp.ClientSession() as client:
        body, content_type = multipart([*originals, b"not DICOM at all" * 10])
        async with client.post(f"{base}/studies/{study}", data=body, headers={"Content-Type": content_type}) as got:
            assert got.status == 202 and got.headers["Content-Type"] == "application/dicom+json"
            answer = await got.json(content_type=None)
        stored = [i["00081155"]["Value"][0] for i in answer[REFERENCED]["Value"]]
        assert sorted(stored) == sorted(uids)
        assert [i[REASON]["Value"] for i in answer[FAILED]["Value"]] == [[0xC000]]

        # journaled, one message per instance; store: metadata kept no body, and the spool is empty
        messages = admin.list_messages(engine.journal.engine)
        assert len(messages) == 3 and {m["status"] for m in messages} == {"processed"}
        kept = admin.get_message(engine.journal.engine, messages[0]["id"])
        assert kept["headers"]["dicom-calling-ae"] == "DICOMWEB"
        spool = engine.settings.spool_dir
        assert not spool.exists() or list(spool.iterdir()) == []

        async with client.get(f"{base}/studies?PatientID=W1") as got:
            assert got.status == 200 and got.headers["Content-Type"] == "application/dicom+json"
            (found,) = await got.json(content_type=None)
        assert found["0020000D"]["Value"] == [study] and found["00201208"]["Value"] == [3]
        assert found["00081190"]["Value"] == [f"{base}/studies/{study}"]
        async with client.get(f"{base}/series?Modality=CT&PatientID=W1") as got:
            (found,) = await got.json(content_type=None)
        assert found["0020000E"]["Value"] == [series_uid] and found["00100020"]["Value"] == ["W1"]

        instances = f"{base}/studies/{study}/series/{series_uid}/instances"
        async with client.get(f"{instances}?limit=2") as got:
            first: list[Any] = await got.json(content_type=None)
            assert len(first) == 2 and "additional results" in got.headers["Warning"]
        async with client.get(f"{instances}?limit=2&offset=2") as got:
            rest: list[Any] = await got.json(content_type=None)
            assert len(rest) == 1 and "Warning" not in got.headers
        assert sorted(i["00080018"]["Value"][0] for i in first + rest) == sorted(uids)

        async with client.get(f"{base}/studies/{study}/series/{series_uid}", headers={"Accept": DICOM_PARTS}) as got:
            assert got.status == 200
            retrieved = [c for _, c in parts(await got.read(), got.headers["Content-Type"])]
        assert sorted(retrieved) == sorted(originals)

        async with client.get(f"{base}/studies/{study}/series/{series_uid}/metadata") as got:
            metadata = json.loads(await got.read())
        assert len(metadata) == 3 and all("BulkDataURI" in m["7FE00010"] for m in metadata)
        async with client.get(metadata[0]["7FE00010"]["BulkDataURI"]) as got:
            ((_, pixels),) = parts(await got.read(), got.headers["Content-Type"])
        uid = metadata[0]["00080018"]["Value"][0]
        assert pixels == dcmread(io.BytesIO(originals[uids.index(uid)])).PixelData

        async with client.get(f"{instances}/{uids[0]}/frames/1", headers={"Accept": "*/*"}) as got:
            ((headers, frame),) = parts(await got.read(), got.headers["Content-Type"])
        assert headers["Content-Type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
        assert len(frame) == 128 * 128 * 2

        query = f"requestType=WADO&studyUID={study}&seriesUID={series_uid}&objectUID={uids[1]}"
        async with client.get(f"{base}/wado?{query}") as got:
            assert got.status == 200 and got.headers["Content-Type"] == "image/jpeg"
            assert Image.open(io.BytesIO(await got.read())).size == (128, 128)
        async with client.get(f"{base}/wado?{query}&contentType=application/dicom") as got:
            assert await got.read() == originals[1]
        async with client.get(f"{base}/studies/{study}/thumbnail") as got:
            assert got.status == 200 and got.headers["Content-Type"] == "image/jpeg"

        # the same instances again: replaced, still 200
        body, content_type = multipart(originals)
        async with client.post(f"{base}/studies", data=body, headers={"Content-Type": content_type}) as got:
            assert got.status == 200
        async with client.get(f"{base}/studies/{generate_uid()}") as got:
            assert got.status == 404


async def test_an_archive_refusal_is_the_failure_reason(engine: Engine, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{engine.http_port}/dicomweb"
    (path,) = series(tmp_path / "in", 1, source=SMALL_CT)
    ds = dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.3.1.2.3.3")  # MPPS: no storage
    ds.save_as(path, enforce_file_format=True)
    body, content_type = multipart([path.read_bytes()])
    async with aiohttp.ClientSession() as client:
        async with client.post(f"{base}/studies", data=body, headers={"Content-Type": content_type}) as got:
            assert got.status == 409
            answer = await got.json(content_type=None)
    (failed,) = answer[FAILED]["Value"]
    assert failed[REASON]["Value"] == [0x0122] and failed["00081155"]["Value"] == [ds.SOPInstanceUID]
    (message,) = admin.list_messages(engine.journal.engine)
    assert message["status"] == "failed"
