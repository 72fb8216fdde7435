"""ETL jobs in a running engine: incremental reads, rejected rows, retries after a fix (real EMPI feed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.etl import schema as t
from adapters.etl.state import ask_retry
from tests.etl import helpers as h
from tests.etl.conftest import T0, HisDb, patient
from tests.support import StartEngine, wait_for


@pytest.fixture
def unmappable() -> Iterator[set[str]]:
    h.UNMAPPABLE.clear()
    yield h.UNMAPPABLE
    h.UNMAPPABLE.clear()


async def test_incremental_reads_pick_only_new_and_changed_rows(
    tmp_path: Path, his: HisDb, start_engine: StartEngine
) -> None:
    his.insert(*(patient(n) for n in range(1, 6)))
    h.write_route(tmp_path / "routes", "his-patients", h.patients_route("his-patients", his.uri(batch=2, poll="100ms")))
    engine = await start_engine()
    db, consumer = engine.journal.engine, h.consumer_of(engine, "his-patients")
    await wait_for(lambda: len(h.journaled(db, "his-patients")) == 5 and h.idle(consumer, 1), what="backfill")
    first = h.runs(db, "his-patients")
    assert [(r["mode"], r["status"], r["rows_read"], r["rows_loaded"]) for r in first] == [("backfill", "done", 5, 5)]
    assert h.checkpoint(db, "his-patients")["last_key"] == "P0005"

    # one changed row and one new row; the other four are not read again
    his.update("P0002", phone="13900000000", updated_at=T0 + dt.timedelta(hours=2))
    his.insert(patient(6, updated_at=T0 + dt.timedelta(hours=1)))
    await wait_for(lambda: len(h.journaled(db, "his-patients")) == 7, what="incremental read")
    await wait_for(lambda: h.checkpoint(db, "his-patients")["last_key"] == "P0002", what="checkpoint")
    messages = h.journaled(db, "his-patients")
    assert [m["key"] for m in messages] == ["P0001", "P0002", "P0003", "P0004", "P0005", "P0006", "P0002"]
    assert {m["status"] for m in messages} == {"processed"}
    later = [r for r in h.runs(db, "his-patients") if r["mode"] == "incremental"]
    assert sum(r["rows_read"] for r in later) == 2 and sum(r["rows_loaded"] for r in later) == 2
    patients = h.empi_patients(db)
    assert sorted(patients) == [f"P000{n}" for n in range(1, 7)]
    assert patients["P0002"]["event_time"] == "20240301100000"  # EVN-2: the row's updated_at
    assert (patients["P0001"]["sex"], patients["P0002"]["sex"]) == ("M", "F")  # GB/T 2261.1 1/2
    assert patients["P0003"]["birth_date"] == "19500422"


async def test_a_bad_row_is_rejected_with_its_reason_and_the_batch_goes_on(
    tmp_path: Path, his: HisDb, start_engine: StartEngine
) -> None:
    his.insert(patient(1), patient(2, birth_date="1980-13-45"), patient(3), patient(4, patient_no="  "), patient(5))
    h.write_route(
        tmp_path / "routes", "his-patients", h.patients_route("his-patients", his.uri(batch=10, poll="100ms"))
    )
    engine = await start_engine()
    db, consumer = engine.journal.engine, h.consumer_of(engine, "his-patients")
    await wait_for(lambda: h.idle(consumer, 1), what="the run")
    (run,) = h.runs(db, "his-patients")
    assert (run["rows_read"], run["rows_loaded"], run["rows_rejected"], run["status"]) == (5, 3, 2, "done")
    assert sorted(h.empi_patients(db)) == ["P0001", "P0003", "P0005"]
    rejected = h.rejects(db, "his-patients")
    assert set(rejected) == {"P0002", "  "}
    bad_date = rejected["P0002"]
    assert bad_date["reason"].startswith(
        "TransformError: patient row: column 'birth_date' is not a possible birth date"
    )
    assert '"birth_date": "1980-13-45"' in bad_date["row_json"]
    assert (bad_date["status"], bad_date["attempts"], bad_date["watermark"]) == ("open", 1, "2024-03-01T08:02:00")
    assert rejected["  "]["reason"] == "TransformError: patient row: column 'patient_no' (the patient number) is empty"
    assert h.checkpoint(db, "his-patients")["last_key"] == "P0005"  # past the rejects
    failed = [m for m in h.journaled(db, "his-patients") if m["status"] == "failed"]
    assert [m["key"] for m in failed] == ["P0002", "  "]

    # the hospital corrects the row: the next incremental read loads it and resolves the reject
    his.update("P0002", birth_date="1980-12-25", updated_at=T0 + dt.timedelta(hours=1))
    await wait_for(lambda: h.rejects(db, "his-patients")["P0002"]["status"] == "resolved", what="resolution")
    assert h.rejects(db, "his-patients")["P0002"]["resolution"] == "loaded"
    assert h.empi_patients(db)["P0002"]["birth_date"] == "19801225"


async def test_rejected_rows_rerun_after_a_mapping_fix(
    tmp_path: Path, sqlite_his: HisDb, start_engine: StartEngine, unmappable: set[str]
) -> None:
    his = sqlite_his
    his.insert(*(patient(n) for n in range(1, 5)))
    unmappable.update({"P0002", "P0003"})
    route = h.patients_route(
        "his-patients", his.uri(poll="100ms"), before=("transform: {python: tests.etl.helpers:mapping}",)
    )
    h.write_route(tmp_path / "routes", "his-patients", route)
    engine = await start_engine()
    db, consumer = engine.journal.engine, h.consumer_of(engine, "his-patients")
    await wait_for(lambda: h.idle(consumer, 1), what="the first run")
    assert {k: r["status"] for k, r in h.rejects(db, "his-patients").items()} == {"P0002": "open", "P0003": "open"}

    # P0003 is still unmappable after the fix: it stays rejected with the new reason and a second attempt
    unmappable.discard("P0002")
    his.update("P0003", name="王五")  # same watermark: the retry reads the current row by its key
    assert ask_retry(db, "his-patients", None) == 2
    await wait_for(lambda: h.idle(consumer, 2), what="the retry run")
    retry_run = h.runs(db, "his-patients")[-1]
    assert (retry_run["mode"], retry_run["rows_read"], retry_run["rows_loaded"], retry_run["rows_rejected"]) == (
        "retry", 2, 1, 1)  # fmt: skip
    after = h.rejects(db, "his-patients")
    assert (after["P0002"]["status"], after["P0002"]["resolution"]) == ("resolved", "loaded")
    assert (after["P0003"]["status"], after["P0003"]["attempts"]) == ("open", 2)
    assert '"name": "王五"' in after["P0003"]["row_json"]
    # the failed message's key was taken again by the retry: one failed and one processed message for P0002
    p2 = [m["status"] for m in h.journaled(db, "his-patients") if m["key"] == "P0002"]
    assert p2 == ["failed", "processed"]
    assert "P0002" in h.empi_patients(db)
    assert h.checkpoint(db, "his-patients")["last_key"] == "P0004"  # retries do not move the checkpoint


async def test_a_row_gone_from_the_view_resolves_its_retry_as_gone(
    tmp_path: Path, sqlite_his: HisDb, start_engine: StartEngine, unmappable: set[str]
) -> None:
    sqlite_his.insert(patient(1), patient(2))
    unmappable.add("P0001")
    route = h.patients_route(
        "jobs", sqlite_his.uri(poll="100ms"), before=("transform: {python: tests.etl.helpers:mapping}",)
    )
    h.write_route(tmp_path / "routes", "jobs", route)
    engine = await start_engine()
    db, consumer = engine.journal.engine, h.consumer_of(engine, "jobs")
    await wait_for(lambda: h.idle(consumer, 1), what="the first run")
    with sqlite_his.engine.begin() as conn:
        conn.execute(sqlite_his.table.delete().where(sqlite_his.table.c.patient_no == "P0001"))
    assert ask_retry(db, "jobs", "P0001") == 1
    await wait_for(lambda: h.rejects(db, "jobs")["P0001"]["status"] == t.RESOLVED, what="resolution")
    assert h.rejects(db, "jobs")["P0001"]["resolution"] == "gone"


async def test_a_view_that_is_missing_at_first_is_read_once_it_exists(
    tmp_path: Path, sqlite_his: HisDb, start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    uri = sqlite_his.uri(poll="100ms").replace(f"etl:{sqlite_his.view}?", "etl:v_not_yet?")
    h.write_route(tmp_path / "routes", "later", h.patients_route("later", uri))
    engine = await start_engine()
    await wait_for(lambda: any("table 'v_not_yet' does not exist" in r.getMessage() for r in caplog.records),
                   what="the error logged")  # fmt: skip
    assert h.runs(engine.journal.engine, "later") == []  # polling records runs only once rows are read
    sqlite_his.insert(patient(1))
    with sqlite_his.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE VIEW v_not_yet AS SELECT * FROM {sqlite_his.table.name}")
    try:
        await wait_for(lambda: [m["key"] for m in h.journaled(engine.journal.engine, "later")] == ["P0001"],
                       what="the row read")  # fmt: skip
    finally:
        with sqlite_his.engine.begin() as conn:
            conn.exec_driver_sql("DROP VIEW v_not_yet")
