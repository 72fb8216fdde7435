"""The shipped route routes/dicom-in.yaml with the real service:dicom-archive: dcmtk stores, finds, moves and gets."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.uid import generate_uid

from esb.journal.schema import deliveries
from esb.runtime.engine import Engine
from esb.settings import PACKAGE_ROOT
from profiles.dicom.service import DicomArchiveService
from tests.adapters.dicom import support
from tests.adapters.dicom.support import association, elements, free_port, port_of, storescp
from tests.conftest import write_routes
from tests.dicom_support import dcmtk, identifier, series
from tests.support import StartEngine, wait_for

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture
async def archive_engine(
    db_url: str,
    tmp_path: Path,
    start_engine: StartEngine,
    monkeypatch: pytest.MonkeyPatch,
    dicom_config: Callable[[dict[str, int]], Path],
) -> tuple[Engine, int]:
    """An engine running the shipped dicom-in route on a free port; the C-MOVE destination's port."""
    destination = free_port()
    dicom_config({"MOVESCU": destination})
    monkeypatch.setenv("ESB_DICOM_PORT", "0")
    monkeypatch.setenv("ESB_LISTEN_HOST", "127.0.0.1")
    (tmp_path / "routes").mkdir()
    shutil.copy(PACKAGE_ROOT / "routes" / "dicom-in.yaml", tmp_path / "routes")
    engine = await start_engine(db_url=db_url)
    return engine, destination


def archive_service(engine: Engine) -> DicomArchiveService:
    service = engine.context.service("dicom-archive")
    assert isinstance(service, DicomArchiveService)
    return service


async def test_store_find_move_and_get_against_the_archive(archive_engine: tuple[Engine, int], tmp_path: Path) -> None:
    engine, destination = archive_engine
    port = str(port_of(engine, "dicom-in"))
    study = generate_uid()
    ct = series(tmp_path / "in", 3, study_uid=study, patient_id="E2E-1", accession="ACC1")
    j2k = series(tmp_path / "in", 1, study_uid=study, patient_id="E2E-1", accession="ACC1", source=support.J2K)
    for files, propose in ((ct, "-xe"), (j2k, "-xw")):
        stored = await asyncio.to_thread(dcmtk, "storescu", "-R", propose, "-aet", "CT1", "-aec", "ESB", "127.0.0.1",
                                         port, *files)  # fmt: skip
        assert stored.returncode == 0, stored.stderr
    archive = archive_service(engine).archive
    found = list(archive.find("IMAGE", identifier("IMAGE", StudyInstanceUID=study, SOPInstanceUID="")))
    assert {f.SOPInstanceUID for f in found} == {dcmread(f).SOPInstanceUID for f in ct + j2k}
    spool = Path(engine.settings.spool_dir)
    assert not spool.exists() or list(spool.iterdir()) == []  # moved into the store: bytes written once
    rows = support.journaled(engine)
    assert [r["status"] for r in rows] == ["processed"] * 4
    assert all(r["body"] is None for r in rows)  # store: metadata

    answers = tmp_path / "find"
    answers.mkdir()
    keys = [
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        "PatientID=E2E-1",
        "-k",
        "StudyInstanceUID",
        "-k",
        "AccessionNumber",
    ]
    result = await asyncio.to_thread(dcmtk, "findscu", "-S", "-X", *keys, "-aec", "ESB", "127.0.0.1", port, cwd=answers)
    assert result.returncode == 0, result.stderr
    (answer,) = [dcmread(p) for p in answers.glob("rsp*.dcm")]
    assert (answer.StudyInstanceUID, answer.AccessionNumber) == (study, "ACC1")

    moved = tmp_path / "moved"
    moved.mkdir()
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    titles = ["-aet", "MOVESCU", "-aem", "MOVESCU", "-aec", "ESB"]
    result = await asyncio.to_thread(dcmtk, "movescu", "-v", "-S", "+xa", "+P", str(destination), *titles, "-od", moved,
                                     *keys, "127.0.0.1", port)  # fmt: skip
    assert "Received Final Move Response (Success)" in result.stderr, result.stderr
    originals = {dcmread(f).SOPInstanceUID: dcmread(f) for f in ct + j2k}
    received = {dcmread(p).SOPInstanceUID: dcmread(p) for p in moved.iterdir()}
    assert received.keys() == originals.keys()
    assert all(elements(ds) == elements(originals[uid]) for uid, ds in received.items())

    got = tmp_path / "got"
    got.mkdir()
    keys = ["-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={study}"]
    keys += ["-k", f"SeriesInstanceUID={dcmread(ct[0]).SeriesInstanceUID}"]
    result = await asyncio.to_thread(dcmtk, "getscu", "-S", "-od", got, *keys, "-aec", "ESB", "127.0.0.1", port)
    assert result.returncode == 0, result.stderr
    assert {dcmread(p).SOPInstanceUID for p in got.iterdir()} == {dcmread(f).SOPInstanceUID for f in ct}


async def test_the_archive_refusal_is_the_c_store_status(archive_engine: tuple[Engine, int], tmp_path: Path) -> None:
    engine, _ = archive_engine
    good, bad = series(tmp_path / "in", 2)
    broken = dcmread(bad)
    broken.StudyInstanceUID = "not-a-uid"
    broken.save_as(bad, enforce_file_format=True)

    def store() -> list[int]:
        with association(port_of(engine, "dicom-in"), support.store_contexts(good)) as assoc:
            return [int(assoc.send_c_store(dcmread(f)).Status) for f in (bad, good)]

    assert await asyncio.to_thread(store) == [0xA900, 0x0000]
    statuses = sorted(r["status"] for r in support.journaled(engine))
    assert statuses == ["failed", "processed"]


async def test_archive_then_forward_sends_the_archived_copy(
    db_url: str, tmp_path: Path, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spooled file is moved into the archive (store: metadata); the queued C-STORE reads it from there."""
    monkeypatch.setenv("ESB_DICOM_CONFIG", str(tmp_path / "none.yaml"))
    files = [*series(tmp_path / "in", 2), *series(tmp_path / "in", 1, source=support.J2K)]
    with storescp(tmp_path / "pacs", ae_title="PACS") as pacs:
        shipped = (PACKAGE_ROOT / "routes" / "dicom-in.yaml").read_text(encoding="utf-8")
        forward = f"    - to: dicom://PACS@127.0.0.1:{pacs}?calling_ae=ESB\n"
        route = shipped.replace("${ESB_DICOM_PORT:-11112}", "0") + forward
        write_routes(tmp_path / "routes", {"dicom-in": route})
        engine = await start_engine(db_url=db_url)
        sent = await asyncio.to_thread(dcmtk, "storescu", "-R", "-xw", "-aec", "ESB", "127.0.0.1",
                                       str(port_of(engine, "dicom-in")), *files)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        await wait_for(lambda: _delivered(engine) == 3, 20, "three deliveries")
        received = {dcmread(p).SOPInstanceUID: dcmread(p) for p in (tmp_path / "pacs").iterdir()}
    originals = {dcmread(f).SOPInstanceUID: dcmread(f) for f in files}
    assert received.keys() == originals.keys()
    assert all(elements(ds) == elements(originals[uid]) for uid, ds in received.items())
    assert all(r["body"] is None for r in support.journaled(engine))  # the journal kept no copy


def _delivered(engine: Engine) -> int:
    with engine.journal.engine.connect() as conn:
        return len(conn.execute(sa.select(deliveries).where(deliveries.c.status == "delivered")).all())
