"""service:dicom-archive on the engine's database: store, replay after the move, refusals, study completion hooks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from esb.errors import DicomError
from esb.exchange import Attachment, Exchange, attachments_header
from esb.journal import Journal
from esb.registry import service_class
from esb.runtime.context import EngineContext
from esb.settings import Settings
from profiles.dicom.service import DicomArchiveService
from tests.dicom.conftest import Clock
from tests.dicom_support import identifier, series


@pytest.fixture
async def service(
    db_url: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[DicomArchiveService]:
    settings = make_settings(db_url=db_url, dicom_ae_title="ESBSVC")
    journal = Journal(db_url, spool_root=settings.spool_dir)
    journal.upgrade()
    found = service_class("dicom-archive")(EngineContext(settings, journal))
    assert isinstance(found, DicomArchiveService)
    await found.start()
    yield found
    journal.close()


def exchange_for(path: Path, **headers: str) -> Exchange:
    attachment = Attachment("instance", "application/dicom", path=str(path))
    ds = dcmread(path, stop_before_pixels=True)
    all_headers = {
        "dicom-calling-ae": "CT1",
        "dicom-sop-instance-uid": str(ds.SOPInstanceUID),
        "esb-attachments": attachments_header([attachment]),
        **headers,
    }
    return Exchange(body=b'{"00100020":{"vr":"LO"}}', headers=all_headers, attachments=[attachment])


async def test_store_moves_the_spooled_file_and_a_replay_finds_it_stored(
    service: DicomArchiveService, tmp_path: Path
) -> None:
    spool = Path(service.context.settings.spool_dir)
    [path] = series(spool / "m1", 1, patient_id="P9")
    exchange = exchange_for(path)
    reply = await service.call("store", exchange)
    assert reply is not None and reply.body == exchange.body
    assert reply.attachments == [] and "esb-attachments" not in reply.headers
    assert (reply.headers["dicom-new-instance"], reply.headers["dicom-new-study"]) == ("true", "true")
    assert not path.exists()
    archive = service.archive
    instance = archive.instance(exchange.headers["dicom-sop-instance-uid"])
    assert instance is not None and instance.storage_key is not None
    assert Path(str(archive.blobs.local_path(instance.storage_key))).is_relative_to(service.context.settings.data_dir)
    [found] = list(archive.find("STUDY", identifier("STUDY", PatientID="P9", StudyInstanceUID="")))
    assert found.RetrieveAETitle == "ESBSVC" and found.StudyInstanceUID == instance.study_uid
    replayed = await service.call("store", exchange)  # from the journal, after the file moved
    assert replayed is not None and replayed.headers["dicom-new-instance"] == "false"


async def test_refusals_raise_dicom_errors_and_keep_the_file(service: DicomArchiveService, tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\x00" * 2000)
    exchange = exchange_for_bytes(bad)
    with pytest.raises(DicomError) as caught:
        await service.call("store", exchange)
    assert caught.value.status == 0xC000 and bad.exists()
    with pytest.raises(DicomError):
        await service.call("store", Exchange(body=b"{}"))
    gone = Exchange(body=b"{}", attachments=[Attachment("i", "application/dicom", path=str(tmp_path / "gone.dcm"))])
    gone.headers["dicom-sop-instance-uid"] = generate_uid()
    with pytest.raises(DicomError) as caught:
        await service.call("store", gone)
    assert caught.value.status == 0xA700


def exchange_for_bytes(path: Path) -> Exchange:
    return Exchange(body=b"{}", attachments=[Attachment("i", "application/dicom", path=str(path))])


async def test_an_in_memory_part_is_stored_too(service: DicomArchiveService, tmp_path: Path) -> None:
    [path] = series(tmp_path / "stow", 1)
    data = path.read_bytes()
    reply = await service.call("store", Exchange(body=b"{}", attachments=[Attachment("i", "application/dicom", data)]))
    assert reply is not None and reply.headers["dicom-new-instance"] == "true"
    instance = service.archive.instance(str(dcmread(path).SOPInstanceUID))
    assert instance is not None
    with service.archive.open(instance) as stream:
        assert stream.read() == data
    assert not any(Path(service.context.settings.spool_dir).glob("dicom-*.dcm"))


async def test_complete_studies_reports_and_calls_the_hooks(service: DicomArchiveService, tmp_path: Path) -> None:
    clock = Clock()
    service.archive.clock = clock
    seen: list[str] = []
    service.on_complete.append(seen.append)
    uid = generate_uid()
    for path in series(tmp_path / "s", 2, study_uid=uid):
        await service.call("store", exchange_for(path))
    reply = await service.call("complete-studies", Exchange(body=b""))
    assert reply is not None and json.loads(reply.headers["dicom-complete-studies"]) == [] and seen == []
    clock.advance(service.config.study_complete_after + 1)

    def broken(study_uid: str) -> None:
        raise RuntimeError("the XDS repository is down")

    service.on_complete.append(broken)
    reply = await service.call("complete-studies", Exchange(body=b""))
    assert reply is not None
    assert json.loads(reply.headers["dicom-complete-studies"]) == [uid] == json.loads(reply.body)["complete"]
    assert seen == [uid]
    assert service.archive.studies_with_status("complete") == [uid]  # the failed hook can retry from here
    expired = await service.call("expire-cache", Exchange(body=b""))
    assert expired is not None and json.loads(expired.body) == {"expired": 0}
    with pytest.raises(ValueError, match="no operation"):
        await service.call("compact", Exchange(body=b""))
