"""dicom: Storage SCP against dcmtk storescu/echoscu and a pynetdicom SCU, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pynetdicom import _config
from pynetdicom.presentation import build_context

from tests.adapters.dicom import support
from tests.adapters.dicom.conftest import DicomEngine
from tests.adapters.dicom.support import RECEIVED, association, body_json, dataset_bytes, elements, port_of, spooled
from tests.dicom_support import dcmtk, series

pytestmark = pytest.mark.filterwarnings("error")

#: storescu's option proposing each transfer syntax (without one it proposes uncompressed only)
PROPOSE = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
}
SOURCES = (
    "CT_small.dcm",  # explicit VR little endian
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",  # deflated
    "SC_rgb_dcmtk_+eb+cr.dcm",  # JPEG baseline
    "JPEG-lossy.dcm",  # JPEG extended
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless SV1
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEGLSNearLossless_16.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "JPEG2000.dcm",
    "MR_small_RLE.dcm",
)
PRIVATE_PROFILE = """\
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LittleEndianExplicit
[[PresentationContexts]]
[Private]
PresentationContext1 = {sop_class}\\Uncompressed
PresentationContext2 = CTImageStorage\\Uncompressed
[[Profiles]]
[Private]
PresentationContexts = Private
"""


async def test_storescu_in_every_transfer_syntax_reaches_the_route(dicom_engine: DicomEngine, tmp_path: Path) -> None:
    engine = await dicom_engine()
    port = port_of(engine)
    files = [series(tmp_path / "in", 1, source=name, patient_id=f"P{n}")[0] for n, name in enumerate(SOURCES)]
    syntaxes = [str(dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID) for f in files]
    for file, syntax in zip(files, syntaxes, strict=True):
        done = await asyncio.to_thread(dcmtk, "storescu", "-R", PROPOSE[syntax], "-aet", "MODALITY1", "-aec", "ESB",
                                       "127.0.0.1", str(port), file)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert len(RECEIVED) == len(SOURCES)
    for n, (file, syntax, exchange) in enumerate(zip(files, syntaxes, RECEIVED, strict=True)):
        sent = dcmread(file)
        headers = exchange.headers
        assert headers["dicom-calling-ae"] == "MODALITY1" and headers["dicom-called-ae"] == "ESB"
        assert headers["dicom-peer"].startswith("127.0.0.1:")
        assert headers["dicom-transfer-syntax"] == syntax, file.name
        assert headers["dicom-sop-class-uid"] == sent.SOPClassUID
        assert headers["dicom-sop-instance-uid"] == sent.SOPInstanceUID
        assert headers["dicom-study-uid"] == sent.StudyInstanceUID
        assert headers["dicom-series-uid"] == sent.SeriesInstanceUID
        assert headers["dicom-modality"] == sent.get("Modality", "") and headers["dicom-patient-id"] == f"P{n}"
        assert headers["content-type"] == "application/dicom+json"
        body = body_json(exchange)
        assert body["0020000D"] == {"vr": "UI", "Value": [sent.StudyInstanceUID]}
        assert body["00100020"] == {"vr": "LO", "Value": [f"P{n}"]}
        assert "7FE00010" not in body
        stored = dcmread(spooled(exchange))
        assert stored.file_meta.TransferSyntaxUID == syntax
        assert stored.file_meta.MediaStorageSOPInstanceUID == sent.SOPInstanceUID
        assert stored.file_meta.SourceApplicationEntityTitle == "MODALITY1"
        assert elements(stored) == elements(sent), file.name  # pixel data included, still encoded
    rows = support.journaled(engine)
    assert [r["status"] for r in rows] == ["processed"] * len(SOURCES)
    assert rows[0]["headers"]["dicom-sop-instance-uid"] == RECEIVED[0].headers["dicom-sop-instance-uid"]


def _send_raw(port: int, files: list[Path], **kwargs: Any) -> list[int]:
    """C-STORE each file's encoded data set as it is on disk (pynetdicom's chunked send); the statuses."""
    statuses = []
    with association(port, support.store_contexts(*files), **kwargs) as assoc:
        assert assoc.is_established
        for file in files:
            statuses.append(int(assoc.send_c_store(file).Status))
    return statuses


async def test_data_sets_are_spooled_byte_for_byte_over_one_association(
    dicom_engine: DicomEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    engine = await dicom_engine()
    study = generate_uid()
    files = [
        *series(tmp_path / "in", 3, study_uid=study),
        *series(tmp_path / "in", 2, study_uid=study, source="JPEG2000.dcm"),
        *series(tmp_path / "in", 1, study_uid=study, source="MR_small_RLE.dcm"),
        *series(tmp_path / "in", 1, study_uid=study, source="MR_small_jpeg_ls_lossless.dcm"),
    ]
    statuses = await asyncio.to_thread(_send_raw, port_of(engine), files)
    assert statuses == [0x0000] * len(files)
    assert [e.headers["dicom-sop-instance-uid"] for e in RECEIVED] == [dcmread(f).SOPInstanceUID for f in files]
    for file, exchange in zip(files, RECEIVED, strict=True):
        assert dataset_bytes(spooled(exchange)) == dataset_bytes(file)
        assert exchange.headers["dicom-study-uid"] == study and exchange.headers["dicom-calling-ae"] == "TESTSCU"


async def test_every_scp_socket_has_tcp_nodelay(dicom_engine: DicomEngine) -> None:
    engine = await dicom_engine()

    def hold() -> list[int]:
        with association(port_of(engine), [build_context("1.2.840.10008.1.1")]) as assoc:
            assert assoc.is_established and assoc.send_c_echo().Status == 0x0000
            return support.nodelay_of(engine)

    assert await asyncio.to_thread(hold) == [1]


async def test_echoscu_and_ae_title_checks(dicom_engine: DicomEngine) -> None:
    engine = await dicom_engine("calling_aes=MODALITY1,MODALITY2")
    port = str(port_of(engine))
    ok = await asyncio.to_thread(dcmtk, "echoscu", "-aet", "MODALITY2", "-aec", "ESB", "127.0.0.1", port)
    assert ok.returncode == 0, ok.stderr
    wrong_called = await asyncio.to_thread(dcmtk, "echoscu", "-aet", "MODALITY1", "-aec", "OTHER", "127.0.0.1", port)
    assert wrong_called.returncode != 0 and "Called AE Title Not Recognized" in wrong_called.stderr
    stranger = await asyncio.to_thread(dcmtk, "echoscu", "-aet", "STRANGER", "-aec", "ESB", "127.0.0.1", port)
    assert stranger.returncode != 0 and "Calling AE Title Not Recognized" in stranger.stderr
    again = await asyncio.to_thread(dcmtk, "echoscu", "-aet", "MODALITY1", "-aec", "ESB", "127.0.0.1", port)
    assert again.returncode == 0, again.stderr  # the refusals left the SCP serving


async def test_a_private_sop_class_is_refused_and_the_others_go_through(
    dicom_engine: DicomEngine, tmp_path: Path
) -> None:
    engine = await dicom_engine()
    (good,) = series(tmp_path / "in", 1)
    private = dcmread(good)
    private.SOPClassUID = private.file_meta.MediaStorageSOPClassUID = UID("1.2.826.0.1.3680043.8.498.77.1")
    private.SOPInstanceUID = private.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    private_file = tmp_path / "private.dcm"
    private.save_as(private_file, enforce_file_format=True)

    def send() -> tuple[list[str], str, int]:
        contexts = [build_context(private.SOPClassUID, ExplicitVRLittleEndian), *support.store_contexts(good)]
        with association(port_of(engine), contexts) as assoc:
            rejected = [str(cx.abstract_syntax) for cx in assoc.rejected_contexts]
            try:
                assoc.send_c_store(private)
                refused = "sent"
            except ValueError as exc:
                refused = str(exc)
            return rejected, refused, int(assoc.send_c_store(dcmread(good)).Status)

    rejected, refused, status = await asyncio.to_thread(send)
    assert rejected == [private.SOPClassUID] and "No presentation context" in refused and status == 0x0000
    # storescu proposes a SOP class it does not know only from an association profile file
    profile = tmp_path / "private.cfg"
    profile.write_text(PRIVATE_PROFILE.format(sop_class=private.SOPClassUID), encoding="utf-8")
    by_dcmtk = await asyncio.to_thread(dcmtk, "storescu", "-nh", "-xf", profile, "Private", "-aec", "ESB", "127.0.0.1",
                                       str(port_of(engine)), private_file, good)  # fmt: skip
    assert "No presentation context for: (unknown SOP class)" in by_dcmtk.stderr  # -nh: goes on, exit 0
    assert [e.headers["dicom-sop-class-uid"] for e in RECEIVED] == [dcmread(good).SOPClassUID] * 2


def _corrupt(tmp_path: Path, good: Path, name: str, data: bytes) -> Path:
    """``good``'s file meta followed by ``data`` as the data set."""
    whole = good.read_bytes()
    path = tmp_path / name
    path.write_bytes(whole[: len(whole) - len(dataset_bytes(good))] + data)
    return path


async def test_corrupt_data_sets_are_refused_and_the_association_goes_on(
    dicom_engine: DicomEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    engine = await dicom_engine()
    first, second, third, fourth = series(tmp_path / "in", 4)
    raw = dataset_bytes(first)
    truncated = _corrupt(tmp_path, first, "truncated.dcm", raw[: len(raw) // 2])
    garbage = _corrupt(tmp_path, second, "garbage.dcm", bytes(range(256)) * 40)
    other = dcmread(third)
    other.SOPInstanceUID = generate_uid()  # the data set names another instance than the command
    other.save_as(tmp_path / "mismatch.dcm", enforce_file_format=False)
    mismatch = _corrupt(tmp_path, third, "mismatch.dcm", dataset_bytes(tmp_path / "mismatch.dcm"))
    statuses = await asyncio.to_thread(_send_raw, port_of(engine), [truncated, garbage, mismatch, fourth])
    assert statuses == [0xC000, 0xC000, 0xA900, 0x0000]
    assert [e.headers["dicom-sop-instance-uid"] for e in RECEIVED] == [dcmread(fourth).SOPInstanceUID]
    assert len(support.journaled(engine)) == 1
    assert [p.name for p in (tmp_path / "var" / "spool").iterdir()] == [spooled(RECEIVED[0]).name]
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "esb.adapters.dicom" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 3 and all("refused with 0x" in w and "TESTSCU" in w for w in warnings)
    assert not any("Test^Patient" in r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG)
