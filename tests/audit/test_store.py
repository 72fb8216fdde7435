"""emit() -> the trail's writer -> esb_audit_records: search, report, status, claims, pruning."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import sqlalchemy as sa

import esb.audit as audit
from esb.audit import events as e
from esb.audit.model import AuditEvent, AuditSource
from esb.audit.schema import patients, records
from esb.audit.store import AuditStore, Search
from esb.audit.trail import AuditTrail
from esb.journal.store import utcnow
from tests.audit.samples import EMPI, HIS, every_event


def feed(patient: str, action: str = "C", at: dt.datetime | None = None) -> AuditEvent:
    event = e.patient_record(action=action, patient_id=patient, source=HIS, destination=EMPI,  # type: ignore[arg-type]
                             message_id="m1")  # fmt: skip
    return event if at is None else dataclasses.replace(event, at=at)


def test_emitted_events_are_stored_and_found_by_patient_user_event_and_time(
    store: AuditStore, trail: AuditTrail
) -> None:
    old = utcnow().replace(tzinfo=dt.UTC) - dt.timedelta(days=3)
    audit.emit(feed("P1^^^HIS1", at=old))
    audit.emit(feed("P2^^^HIS1", "U"))
    audit.emit(e.user_authentication(user="alice", success=False, peer_host="127.0.0.1", method="password"))
    audit.emit(e.admin_operation(user="alice", permission="empi.read", granted=True, target="patient",
                                 patient_ids=("P1^^^HIS1", "P3^^^HIS1")))  # fmt: skip
    assert trail.flush()

    def ids(**query: object) -> list[str]:
        rows, _ = store.search(Search(**query))  # type: ignore[arg-type]
        return [f"{r.event_id}/{r.action}/{r.user_id}" for r in rows]

    assert ids(patient="P1^^^HIS1") == ["110110/R/alice", "110110/C/HIS1|HOSP"]  # newest first
    assert ids(user="alice") == ["110110/R/alice", "110114/E/alice"]
    assert ids(event="user-authentication") == ["110114/E/alice"]
    assert ids(event="110110", since=utcnow() - dt.timedelta(days=1)) == ["110110/R/alice", "110110/U/HIS1|HOSP"]
    assert ids(event="ITI-8") == ["110110/U/HIS1|HOSP", "110110/C/HIS1|HOSP"]
    assert ids(outcome=4) == ["110114/E/alice"]
    assert ids(until=utcnow() - dt.timedelta(days=1)) == ["110110/C/HIS1|HOSP"]
    rows, named = store.search(Search(user="alice", event="patient-record"))
    assert sorted(named[rows[0].id]) == ["P1^^^HIS1", "P3^^^HIS1"]
    assert rows[0].source_node == "test-node" and rows[0].sent_at is None
    assert b'AuditEnterpriseSiteID="test-site"' in rows[0].xml.encode()


def test_report_counts_by_event_outcome_user_and_node(store: AuditStore, trail: AuditTrail) -> None:
    for event in every_event().values():
        audit.emit(event)
    audit.emit(feed("P1^^^HIS1"))
    assert trail.flush()
    report = store.report()
    assert report["total"] == len(every_event()) + 1
    by_event = {(code, kind): n for code, kind, n in report["by_event"]}
    assert by_event[("110110", "ITI-8")] == 3 and by_event[("110100", "110120")] == 1
    assert dict(report["by_outcome"]) == {0: len(every_event()) - 6, 4: 6, 8: 1}
    assert dict(report["by_user"])["alice"] == sum(1 for ev in every_event().values() if ev.user == "alice")
    assert report["by_node"] == [("test-node", report["total"])]
    assert store.report(since=utcnow() + dt.timedelta(minutes=1))["total"] == 0


def test_emit_from_many_threads_stores_every_event_once(store: AuditStore, trail: AuditTrail) -> None:
    def burst(n: int) -> None:
        for i in range(100):
            audit.emit(feed(f"T{n}-{i}^^^HIS1"))

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert trail.flush()
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar_one() == 800
        assert conn.execute(sa.select(sa.func.count(sa.distinct(patients.c.patient_id)))).scalar_one() == 800


def test_two_nodes_claim_disjoint_batches_and_failures_wait_for_their_retry(
    store: AuditStore, trail: AuditTrail
) -> None:
    for i in range(10):
        audit.emit(feed(f"C{i}^^^HIS1"))
    assert trail.flush()
    first = store.claim("node-a", 6, lease=60)
    second = store.claim("node-b", 6, lease=60)
    assert len(first) == 6 and len(second) == 4
    assert not {r.id for r in first} & {r.id for r in second}
    assert store.claim("node-c", 10, lease=60) == []  # all held
    store.mark_sent([r.id for r in first])
    store.mark_failed([r.id for r in second], "cannot connect", retry_in=3600)
    assert store.claim("node-c", 10, lease=60) == []  # sent, or waiting for their retry
    state = store.status()
    assert (state["unsent"], state["last_error"], state["attempts"]) == (4, "cannot connect", 1)
    store.mark_failed([r.id for r in second], "again", retry_in=-1)  # the backoff is over
    again = store.claim("node-c", 10, lease=60)
    assert sorted(r.id for r in again) == sorted(r.id for r in second)
    assert all(r.attempts == 2 for r in again)


def test_pruning_drops_old_sent_records_and_keeps_unsent_ones(store: AuditStore, trail: AuditTrail) -> None:
    old = utcnow().replace(tzinfo=dt.UTC) - dt.timedelta(days=500)
    sent, unsent, new = feed("OLD1^^^HIS1", at=old), feed("OLD2^^^HIS1", at=old), feed("NEW^^^HIS1")
    for event in (sent, unsent, new):
        audit.emit(event)
    assert trail.flush()
    store.mark_sent([sent.record_id, new.record_id])
    assert store.prune(utcnow() - dt.timedelta(days=400)) == 1
    rows, _ = store.search(Search())
    assert sorted(r.id for r in rows) == sorted([unsent.record_id, new.record_id])
    assert store.search(Search(patient="OLD1^^^HIS1"))[0] == []
    assert len(store.search(Search(patient="OLD2^^^HIS1"))[0]) == 1


def test_the_trail_keeps_events_while_the_database_refuses_them(store: AuditStore) -> None:
    """A failing insert (the table is gone) keeps the batch queued and retried, in order, until it goes in."""
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE esb_audit_patients RENAME TO esb_audit_patients_away"))
    made = AuditTrail(store, AuditSource("n"), flush_interval=0.01)
    made.start()
    try:
        events = [feed(f"D{i}^^^HIS1") for i in range(5)]
        for event in events:
            made.put(event)
        assert not made.flush(timeout=0.3)  # cannot be stored now
        assert made.pending == 5
        with store.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE esb_audit_patients_away RENAME TO esb_audit_patients"))
        assert made.flush(timeout=20)
    finally:
        made.stop()
    rows, _ = store.search(Search())
    assert sorted(r.id for r in rows) == sorted(ev.record_id for ev in events)


def test_an_event_emitted_twice_is_stored_once_and_does_not_hold_back_the_others(
    store: AuditStore, trail: AuditTrail
) -> None:
    twice = feed("TWICE^^^HIS1")
    audit.emit(twice)
    assert trail.flush()
    later = feed("LATER^^^HIS1")
    audit.emit(twice)
    audit.emit(later)
    assert trail.flush()
    rows, _ = store.search(Search())
    assert sorted(r.id for r in rows) == sorted([twice.record_id, later.record_id])


def test_an_event_that_cannot_be_rendered_is_dropped_alone(store: AuditStore, trail: AuditTrail) -> None:
    broken = dataclasses.replace(feed("X^^^HIS1"), action=None)  # type: ignore[arg-type]
    fine = feed("Y^^^HIS1")
    audit.emit(broken)
    audit.emit(fine)
    assert trail.flush()
    rows, _ = store.search(Search())
    assert [r.id for r in rows] == [fine.record_id]
