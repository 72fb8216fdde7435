"""The storage policy (config/dicom.yaml store_as, B3.2): instances kept in a lossless syntax, pixels unchanged."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from esb.journal import Journal
from esb.runtime.context import EngineContext
from esb.settings import Settings
from profiles.dicom.api import InstanceRef
from profiles.dicom.service import DicomArchiveService
from tests.dicom.test_archive_service import exchange_for
from tests.dicom_support import series
from tests.dicom_support import testdata as dicom_file


@pytest.fixture
async def jls_service(db_url: str, make_settings: Callable[..., Settings]) -> AsyncIterator[DicomArchiveService]:
    settings = make_settings(db_url=db_url)
    journal = Journal(db_url, spool_root=settings.spool_dir)
    journal.upgrade()
    service = DicomArchiveService(EngineContext(settings, journal))
    service.config = dataclasses.replace(service.config, store_as=str(JPEGLSLossless))
    await service.start()
    yield service
    journal.close()


def stored(service: DicomArchiveService, sop_uid: str) -> tuple[InstanceRef, bytes]:
    instance = service.archive.instance(sop_uid)
    assert instance is not None
    with service.archive.open(instance) as stream:
        return instance, stream.read()


async def test_store_as_jpeg_ls_keeps_the_pixels(jls_service: DicomArchiveService) -> None:
    spool = Path(jls_service.context.settings.spool_dir)
    [path] = series(spool / "p", 1)
    original = dcmread(path)
    assert original.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    await jls_service.call("store", exchange_for(path, **{"dicom-transfer-syntax": str(ExplicitVRLittleEndian)}))
    instance, data = stored(jls_service, str(original.SOPInstanceUID))
    kept = dcmread(io.BytesIO(data))
    assert kept.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert instance.transfer_syntax == str(JPEGLSLossless)
    assert kept.SOPInstanceUID == original.SOPInstanceUID
    assert np.array_equal(kept.pixel_array, original.pixel_array)


async def test_lossy_input_is_kept_as_received(jls_service: DicomArchiveService, tmp_path: Path) -> None:
    spool = Path(jls_service.context.settings.spool_dir)
    spool.mkdir(parents=True, exist_ok=True)
    source = dicom_file("SC_rgb_jpeg_dcmtk.dcm")  # JPEG baseline: re-encoding losslessly would only grow it
    path = spool / "lossy.dcm"
    path.write_bytes(source.read_bytes())
    received = dcmread(path, stop_before_pixels=True)
    await jls_service.call(
        "store", exchange_for(path, **{"dicom-transfer-syntax": str(received.file_meta.TransferSyntaxUID)})
    )
    _, data = stored(jls_service, str(received.SOPInstanceUID))
    assert data == source.read_bytes()
