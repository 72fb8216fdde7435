"""Active collection from a real Orthanc into the real archive: date window, C-GET and C-MOVE, resume, report."""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pynetdicom import AE, StoragePresentationContexts, evt

from esb.errors import DicomError
from profiles.dicom import collect_schema as t
from profiles.dicom.collect import BUSY_AFTER, StudyProgress, run_collection
from profiles.dicom.config import RemoteAe
from profiles.dicom.qrscu import TRANSFER_SYNTAXES, write_part10
from tests.dicom_collect.conftest import CountingArchive, Study, remote_of, upload_study
from tests.orthanc_support import Orthanc, free_port


def assert_archived(archive: CountingArchive, study: Study) -> None:
    """Every instance of ``study`` is in the archive, with the bytes Orthanc was given."""
    refs = {r.sop_instance_uid: r for r in archive.study_instances(study.uid)}
    assert set(refs) == study.sop_uids
    for path in study.files:
        original = dcmread(path)
        ref = refs[str(original.SOPInstanceUID)]
        with archive.open(ref) as stored:
            copy = dcmread(stored)
        assert copy.PixelData == original.PixelData
        assert copy.PatientID == original.PatientID
        assert copy.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID == ref.transfer_syntax
        assert ref.storage_key is not None and ref.size > 39000


def test_cget_collects_the_window_and_reports(
    orthanc: Orthanc, engine: sa.Engine, archive: CountingArchive, year: str, tmp_path: Path
) -> None:
    before = upload_study(orthanc, tmp_path, f"{year}0228")
    first = upload_study(orthanc, tmp_path, f"{year}0301", (2, 3))
    middle = upload_study(orthanc, tmp_path, f"{year}0315", (1,))
    last = upload_study(orthanc, tmp_path, f"{year}0331", (2,))
    after = upload_study(orthanc, tmp_path, f"{year}0401")
    seen: list[StudyProgress] = []
    report = run_collection(engine, archive, remote_of(orthanc), since=f"{year}-03-01", until=f"{year}0331",
                            method="get", local_ae="ESBTEST", spool_dir=tmp_path / "spool",
                            progress=seen.append)  # fmt: skip
    assert (report.found, report.retrieved, report.skipped, report.failed) == (3, 3, 0, 0)
    assert (report.status, report.resumed, report.runs, report.method, report.source) == ("done", False, 1, "get",
                                                                                          "ORTHANC")  # fmt: skip
    assert report.instances == 8 == len(archive.stores)
    assert report.bytes == archive.total_size() > 8 * 39000
    assert report.seconds > 0
    for study in (first, middle, last):
        assert_archived(archive, study)
    assert archive.study_instances(before.uid) == archive.study_instances(after.uid) == []
    assert set(archive.stores.values()) == {1}
    assert set(archive.sources.values()) == {"ORTHANC"}
    assert [(p.index, p.total, p.status) for p in seen] == [(1, 3, "done"), (2, 3, "done"), (3, 3, "done")]
    assert [p.study_uid for p in seen] == [first.uid, middle.uid, last.uid]  # by StudyDate
    assert [p.instances for p in seen] == [5, 1, 2]
    with engine.connect() as conn:
        job = conn.execute(sa.select(t.jobs)).one()
        items = conn.execute(sa.select(t.items).order_by(t.items.c.study_date)).all()
    assert (job.status, job.since, job.until) == ("done", f"{year}0301", f"{year}0331")
    assert (job.studies_retrieved, job.instances, job.bytes) == (3, 8, report.bytes)
    assert job.finished_at is not None
    assert [(i.study_uid, i.status, i.remote_instances, i.instances, i.attempts) for i in items] == [
        (first.uid, "done", 5, 5, 1), (middle.uid, "done", 1, 1, 1), (last.uid, "done", 2, 2, 1)
    ]  # fmt: skip
    # a later run of the same window finds the studies complete in the archive: nothing is fetched
    again = run_collection(engine, archive, remote_of(orthanc), since=f"{year}0301", until=f"{year}0331",
                           local_ae="ESBTEST", spool_dir=tmp_path / "spool")  # fmt: skip
    assert (again.job_id != report.job_id, again.found, again.skipped, again.retrieved, again.instances) == (
        True, 3, 3, 0, 0
    )  # fmt: skip
    assert set(archive.stores.values()) == {1}


def test_a_half_collected_study_gets_only_its_missing_instances(
    orthanc: Orthanc, engine: sa.Engine, archive: CountingArchive, year: str, tmp_path: Path
) -> None:
    complete = upload_study(orthanc, tmp_path, f"{year}0601", (2,))
    partial = upload_study(orthanc, tmp_path, f"{year}0602", (3, 2))
    series: dict[str, list[str]] = {}
    for path in partial.files:
        ds = dcmread(path, stop_before_pixels=True)
        series.setdefault(str(ds.SeriesInstanceUID), []).append(str(ds.SOPInstanceUID))
    big, small = sorted(series.values(), key=len, reverse=True)
    archive.refuse = {*big[1:], *small}  # one instance of the first series gets in, the rest fails
    window = {"since": f"{year}0601", "until": f"{year}0602", "local_ae": "ESBTEST", "spool_dir": tmp_path / "spool"}
    failed = run_collection(engine, archive, remote_of(orthanc), **window)  # type: ignore[arg-type]
    assert (failed.status, failed.retrieved, failed.failed, failed.instances) == ("failed", 1, 1, 3)
    with engine.connect() as conn:
        error = conn.execute(sa.select(t.items.c.error).where(t.items.c.study_uid == partial.uid)).scalar_one()
    # the whole study first (4 refused), then what was missing per series (2 + 2 refused again)
    assert re.fullmatch(r"4 of 5 instances not in the archive; last retrieve: status 0x[0-9A-F]{4}, 2 failed", error)
    archive.refuse = set()
    resumed = run_collection(engine, archive, remote_of(orthanc), **window)  # type: ignore[arg-type]
    assert (resumed.job_id, resumed.resumed, resumed.status) == (failed.job_id, True, "done")
    assert (resumed.found, resumed.retrieved, resumed.failed, resumed.instances) == (2, 2, 0, 7)
    assert len(archive.stores) == 7 and set(archive.stores.values()) == {1}
    assert_archived(archive, complete)
    assert_archived(archive, partial)


def test_an_interrupted_job_resumes_and_fetches_nothing_twice(
    orthanc: Orthanc, engine: sa.Engine, archive: CountingArchive, year: str, tmp_path: Path
) -> None:
    studies = [upload_study(orthanc, tmp_path, f"{year}050{day}", (2,)) for day in (1, 2, 3, 4)]
    remote = remote_of(orthanc)
    window = {"since": f"{year}0501", "until": f"{year}0504", "local_ae": "ESBTEST", "spool_dir": tmp_path / "spool"}

    def stop_after_first(progress: StudyProgress) -> None:
        raise KeyboardInterrupt  # Ctrl-C once the first study is done

    with pytest.raises(KeyboardInterrupt):
        run_collection(engine, archive, remote, progress=stop_after_first, **window)  # type: ignore[arg-type]
    with engine.connect() as conn:
        job = conn.execute(sa.select(t.jobs)).one()
    assert (job.status, job.studies_found, job.studies_retrieved, job.instances) == ("interrupted", 4, 1, 2)
    assert len(archive.stores) == 2
    # a job that looks alive (progress a minute ago) is not taken over; one silent for BUSY_AFTER is
    with engine.begin() as conn:
        recently = conn.execute(sa.select(t.jobs.c.updated_at)).scalar_one() - dt.timedelta(seconds=60)
        conn.execute(sa.update(t.jobs).values(status="running", updated_at=recently))
    with pytest.raises(DicomError, match=f"collection job {job.id} is running"):
        run_collection(engine, archive, remote, **window)  # type: ignore[arg-type]
    with engine.begin() as conn:
        conn.execute(sa.update(t.jobs).values(updated_at=recently - dt.timedelta(seconds=BUSY_AFTER)))
    # a time budget of 0 stops after one study per run: the job pauses and goes on next time
    paused = run_collection(engine, archive, remote, time_budget=0, **window)  # type: ignore[arg-type]
    assert (paused.job_id, paused.status, paused.resumed, paused.runs) == (job.id, "paused", True, 2)
    assert (paused.retrieved, paused.instances) == (2, 4)
    final = run_collection(engine, archive, remote, **window)  # type: ignore[arg-type]
    assert (final.job_id, final.status, final.runs, final.found, final.retrieved, final.instances) == (
        job.id, "done", 3, 4, 4, 8
    )  # fmt: skip
    assert len(archive.stores) == 8 and set(archive.stores.values()) == {1}
    assert final.bytes == archive.total_size()
    assert final.seconds >= paused.seconds > 0
    for study in studies:
        assert_archived(archive, study)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.jobs)).scalar_one() == 1


def test_the_window_is_inclusive_and_nothing_outside_is_touched(
    orthanc: Orthanc, engine: sa.Engine, archive: CountingArchive, year: str, tmp_path: Path
) -> None:
    inside = [upload_study(orthanc, tmp_path, d, (1,)) for d in (f"{year}1010", f"{year}1011")]
    outside = [upload_study(orthanc, tmp_path, d, (1,)) for d in (f"{year}1009", f"{year}1012")]
    report = run_collection(engine, archive, remote_of(orthanc), since=f"{year}-10-10", until=f"{year}-10-11",
                            local_ae="ESBTEST", spool_dir=tmp_path / "spool")  # fmt: skip
    assert (report.found, report.retrieved, report.instances) == (2, 2, 2)
    for study in inside:
        assert_archived(archive, study)
    for study in outside:
        assert archive.study_instances(study.uid) == []
    empty = run_collection(engine, archive, remote_of(orthanc), since="1800-01-01", until="1800-12-31",
                           local_ae="ESBTEST", spool_dir=tmp_path / "spool")  # fmt: skip
    assert (empty.found, empty.status, empty.instances) == (0, "done", 0)
    with pytest.raises(ValueError, match="ends"):
        run_collection(engine, archive, remote_of(orthanc), since=f"{year}-10-11", until=f"{year}-10-10",
                       spool_dir=tmp_path)  # fmt: skip


@pytest.fixture
def storage_scp(orthanc: Orthanc, archive: CountingArchive, tmp_path: Path) -> Iterator[CountingArchive]:
    """A Storage SCP at the AE Orthanc knows (title ESB) storing into the archive: the engine's dicom: listener."""
    lock = threading.Lock()

    def on_store(event: evt.Event) -> int:
        path = tmp_path / "scp-spool" / f"{uuid.uuid4().hex}.dcm"
        write_part10(event, path)
        with lock:
            archive.store(path, calling_ae=event.assoc.requestor.ae_title, source="scp")
        return 0x0000

    ae = AE(ae_title=orthanc.peer_ae_title)
    for context in StoragePresentationContexts:
        ae.add_supported_context(str(context.abstract_syntax), TRANSFER_SYNTAXES)
    server = ae.start_server(("127.0.0.1", orthanc.peer_port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
    assert server is not None
    try:
        yield archive
    finally:
        server.shutdown()


def test_cmove_collects_through_our_storage_scp(
    orthanc: Orthanc, engine: sa.Engine, storage_scp: CountingArchive, year: str, tmp_path: Path
) -> None:
    studies = [upload_study(orthanc, tmp_path, d, (2, 1)) for d in (f"{year}0707", f"{year}0708")]
    report = run_collection(engine, storage_scp, remote_of(orthanc), since=f"{year}0707", until=f"{year}0708",
                            method="move", local_ae="ESBTEST", move_destination=orthanc.peer_ae_title,
                            spool_dir=tmp_path / "spool")  # fmt: skip
    assert (report.found, report.retrieved, report.failed, report.instances, report.method) == (2, 2, 0, 6, "move")
    assert report.bytes == storage_scp.total_size()
    assert set(storage_scp.sources.values()) == {"scp"}  # they came through the SCP, not the job
    assert set(storage_scp.stores.values()) == {1}
    for study in studies:
        assert_archived(storage_scp, study)


def test_failures_are_recorded_per_study_and_retried(
    orthanc: Orthanc, engine: sa.Engine, archive: CountingArchive, year: str, tmp_path: Path
) -> None:
    study = upload_study(orthanc, tmp_path, f"{year}0404", (1,))
    window = {"since": f"{year}0404", "until": f"{year}0404", "local_ae": "ESBTEST", "spool_dir": tmp_path / "spool"}
    failed = run_collection(engine, archive, remote_of(orthanc), method="move", move_destination="NOBODY",
                            **window)  # type: ignore[arg-type]  # fmt: skip
    assert (failed.status, failed.found, failed.failed, failed.instances) == ("failed", 1, 1, 0)
    with engine.connect() as conn:
        item = conn.execute(sa.select(t.items)).one()
    # Orthanc answers an unknown move destination with 0xC000 (PS3.4 suggests 0xA801)
    assert item.status == "failed" and "status 0xC000" in item.error and study.uid not in item.error
    retried = run_collection(engine, archive, remote_of(orthanc), method="move", move_destination="NOBODY",
                             **window)  # type: ignore[arg-type]  # fmt: skip
    assert (retried.job_id, retried.resumed, retried.runs, retried.failed) == (failed.job_id, True, 2, 1)
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.items.c.attempts)).scalar_one() == 2


# pynetdicom 3.0.4 loses the socket of a refused connect (shutdown() raises ENOTCONN before close()):
# its ResourceWarning is the library's, not ours
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_unreachable_remote_fails_the_job(engine: sa.Engine, archive: CountingArchive, tmp_path: Path) -> None:
    nowhere = RemoteAe("NOWHERE", "127.0.0.1", free_port())
    with pytest.raises(DicomError, match="refused or did not answer"):
        run_collection(engine, archive, nowhere, since="20200101", until="20200101", spool_dir=tmp_path,
                       timeout=2)  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.jobs.c.status)).scalar_one() == "failed"
