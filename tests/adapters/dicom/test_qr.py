"""dicom: Query/Retrieve SCP against dcmtk findscu, movescu and getscu, answered from the archive double."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.presentation import build_context

from esb.runtime.engine import Engine
from tests.adapters.dicom import support
from tests.adapters.dicom.archive_double import ArchiveDouble
from tests.adapters.dicom.conftest import DicomEngine
from tests.adapters.dicom.support import association, elements, free_port, port_of
from tests.dicom_support import dcmtk, identifier, series

pytestmark = pytest.mark.filterwarnings("error")

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def archive_of(engine: Engine) -> ArchiveDouble:
    archive: ArchiveDouble = engine.context.service("test-archive").archive  # type: ignore[attr-defined]
    return archive


def responses(directory: Path) -> list[Any]:
    return [dcmread(p) for p in sorted(directory.glob("rsp*.dcm"))]


async def test_stored_instances_are_found_with_findscu(dicom_engine: DicomEngine, tmp_path: Path) -> None:
    engine = await dicom_engine("", "to: service:test-archive/store")
    port = str(port_of(engine))
    first = series(tmp_path / "in", 2, patient_id="P1", accession="A1")
    second = series(tmp_path / "in", 1, patient_id="P1", accession="A2", source="MR_small.dcm")
    other = series(tmp_path / "in", 1, patient_id="P2")
    for files in (first, second, other):
        stored = await asyncio.to_thread(dcmtk, "storescu", "-R", "-aec", "ESB", "127.0.0.1", port, *files)
        assert stored.returncode == 0, stored.stderr
    assert len(archive_of(engine).instances) == 4

    found = tmp_path / "study"
    found.mkdir()
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=P1", "-k", "StudyInstanceUID", "-k", "RetrieveAETitle"]
    result = await asyncio.to_thread(dcmtk, "findscu", "-S", "-X", *keys, "-aec", "ESB", "127.0.0.1", port, cwd=found)
    assert result.returncode == 0, result.stderr
    studies = {(r.StudyInstanceUID, r.RetrieveAETitle) for r in responses(found)}
    expected = {dcmread(f).StudyInstanceUID for f in (first[0], second[0])}
    assert studies == {(uid, "ESB") for uid in expected}

    patients = tmp_path / "patient"
    patients.mkdir()
    keys = ["-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=P*"]
    result = await asyncio.to_thread(
        dcmtk, "findscu", "-P", "-X", *keys, "-aec", "ESB", "127.0.0.1", port, cwd=patients
    )
    assert result.returncode == 0, result.stderr
    assert sorted(r.PatientID for r in responses(patients)) == ["P1", "P2"]


async def test_find_refusals_are_statuses(dicom_engine: DicomEngine) -> None:
    engine = await dicom_engine()

    def find(level: str) -> list[int]:
        with association(port_of(engine), [build_context(STUDY_ROOT_FIND)]) as assoc:
            return [int(status.Status) for status, _ in assoc.send_c_find(identifier(level), STUDY_ROOT_FIND)]

    assert await asyncio.to_thread(find, "PATIENT") == [0xA900]  # no PATIENT level in the Study Root model
    assert await asyncio.to_thread(find, "WARD") == [0xA900]
    assert await asyncio.to_thread(find, "STUDY") == [0x0000]  # nothing stored: no matches, success


def _move(port: int, destination_port: int, out: Path, study: str, *extra: str, title: str = "MOVESCU") -> Any:
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    return dcmtk("movescu", "-v", "-S", "+P", str(destination_port), "-aet", title, "-aem", title, "-od", out,
                 *extra, *keys, "-aec", "ESB", "127.0.0.1", str(port))  # fmt: skip


async def test_movescu_retrieves_a_study_to_a_known_destination(
    dicom_engine: DicomEngine, dicom_config: Callable[[dict[str, int]], Path], tmp_path: Path
) -> None:
    destination, plain_destination = free_port(), free_port()
    dicom_config({"MOVESCU": destination, "PLAINSCU": plain_destination})
    engine = await dicom_engine()
    study = generate_uid()
    files = [
        *series(tmp_path / "in", 3, study_uid=study),
        *series(tmp_path / "in", 1, study_uid=study, source=support.J2K),
    ]
    unrelated = series(tmp_path / "in", 1)
    for file in [*files, *unrelated]:
        archive_of(engine).add(file)

    out = tmp_path / "moved"
    out.mkdir()
    result = await asyncio.to_thread(_move, port_of(engine), destination, out, study, "+xa")
    assert result.returncode == 0, result.stderr
    assert "Received Final Move Response (Success)" in result.stderr
    received = {dcmread(p).SOPInstanceUID: p for p in out.iterdir()}
    sent = {dcmread(f).SOPInstanceUID: f for f in files}
    assert received.keys() == sent.keys()
    for uid, path in received.items():  # as stored: same transfer syntax, pixel data untouched
        original = dcmread(sent[uid])
        moved = dcmread(path)
        assert moved.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert moved.PixelData == original.PixelData

    # A destination that only takes uncompressed data: the JPEG 2000 instance is transcoded on the way out.
    only_plain = tmp_path / "plain"
    only_plain.mkdir()
    result = await asyncio.to_thread(_move, port_of(engine), plain_destination, only_plain, study, title="PLAINSCU")
    assert "Received Final Move Response (Success)" in result.stderr
    plain = {dcmread(p).SOPInstanceUID: dcmread(p) for p in only_plain.iterdir()}
    assert plain.keys() == sent.keys()
    j2k = dcmread(files[-1])
    decoded = plain[j2k.SOPInstanceUID]
    assert decoded.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(decoded.pixel_array, j2k.pixel_array)  # decoded, not re-compressed


async def test_move_to_an_unknown_destination_is_a801(
    dicom_engine: DicomEngine, dicom_config: Callable[[dict[str, int]], Path], tmp_path: Path
) -> None:
    dicom_config({"ELSEWHERE": free_port()})
    engine = await dicom_engine()
    (file,) = series(tmp_path / "in", 1)
    archive_of(engine).add(file)
    out = tmp_path / "moved"
    out.mkdir()
    study = str(dcmread(file).StudyInstanceUID)
    result = await asyncio.to_thread(_move, port_of(engine), free_port(), out, study)
    assert "Final Move Response (Refused: MoveDestinationUnknown)" in result.stderr and list(out.iterdir()) == []


async def test_getscu_retrieves_over_the_same_association(dicom_engine: DicomEngine, tmp_path: Path) -> None:
    engine = await dicom_engine()
    study = generate_uid()
    files = series(tmp_path / "in", 3, study_uid=study)
    for file in files:
        archive_of(engine).add(file)
    archive_of(engine).unreadable.add(str(dcmread(files[1]).SOPInstanceUID))  # its blob went missing
    out = tmp_path / "got"
    out.mkdir()
    keys = ["-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study}"]
    keys += ["-k", f"SeriesInstanceUID={dcmread(files[0]).SeriesInstanceUID}"]
    result = await asyncio.to_thread(dcmtk, "getscu", "-v", "-S", "-od", out, *keys, "-aec", "ESB",
                                     "127.0.0.1", str(port_of(engine)))  # fmt: skip
    assert "Number of Completed Suboperations : 2" in result.stderr
    assert "Number of Failed Suboperations    : 1" in result.stderr
    got = sorted(out.iterdir())
    assert {dcmread(p).SOPInstanceUID for p in got} == {dcmread(f).SOPInstanceUID for f in (files[0], files[2])}
    originals = {dcmread(f).SOPInstanceUID: elements(dcmread(f)) for f in (files[0], files[2])}
    assert {dcmread(p).SOPInstanceUID: elements(dcmread(p)) for p in got} == originals


async def test_getscu_without_compression_gets_compressed_instances_decoded(
    dicom_engine: DicomEngine, tmp_path: Path
) -> None:
    engine = await dicom_engine()
    (file,) = series(tmp_path / "in", 1, source=support.J2K)
    archive_of(engine).add(file)
    out = tmp_path / "got"
    out.mkdir()
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={dcmread(file).StudyInstanceUID}"]
    result = await asyncio.to_thread(dcmtk, "getscu", "-v", "-S", "-od", out, *keys, "-aec", "ESB",
                                     "127.0.0.1", str(port_of(engine)))  # fmt: skip
    assert "Number of Completed Suboperations : 1" in result.stderr, result.stderr
    (got,) = [dcmread(p) for p in out.iterdir()]
    original = dcmread(file)
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, original.pixel_array)
