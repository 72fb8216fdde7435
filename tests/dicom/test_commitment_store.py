"""Storage commitment requests in the database (profiles.dicom.commitment): backoff, giving up, claims."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from esb.journal import database
from profiles.dicom.commitment import FIRST_DELAY, MAX_ATTEMPTS, MAX_DELAY, Commitments, Request
from profiles.dicom.commitment_schema import commitments

NOW = dt.datetime(2026, 11, 29, 12, 0, 0)


@pytest.fixture
def store(db_url: str) -> Iterator[Commitments]:
    engine = database.make_engine(db_url)
    database.upgrade(engine)
    yield Commitments(engine)
    engine.dispose()


def test_a_report_not_taken_backs_off_then_is_given_up(store: Commitments) -> None:
    store.record(Request("1.2.3", (("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"),)), "CT1", "CT1", NOW)
    delays: list[float] = []
    now = NOW
    while True:
        [due] = store.claim(now)
        assert store.claim(now) == [], "a claimed request is not handed out twice"
        status = store.retry(due, "DicomError: refused", now)
        with store.engine.connect() as conn:
            row = conn.execute(sa.select(commitments)).one()
        if status == "failed":
            break
        delays.append((row.next_attempt_at - now).total_seconds())
        assert store.claim(now) == [], "not due before its backoff ran out"
        now = row.next_attempt_at
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS and row.error == "DicomError: refused"
    assert delays[:4] == [FIRST_DELAY, FIRST_DELAY * 2, FIRST_DELAY * 4, FIRST_DELAY * 8]
    assert max(delays) == MAX_DELAY and len(delays) == MAX_ATTEMPTS - 1
    assert store.claim(now + dt.timedelta(days=1)) == [], "a request given up is not tried again"
    assert [r["status"] for r in store.rows(status="failed")] == ["failed"]


def test_a_claim_whose_holder_died_is_taken_again_after_its_lease(store: Commitments) -> None:
    store.record(Request("1.2.9", (("1.2.840.10008.5.1.4.1.1.2", "1.2.9.1"),)), "CT1", "CT1", NOW)
    [first] = store.claim(NOW, lease=60)
    assert store.claim(NOW + dt.timedelta(seconds=59), lease=60) == []
    [again] = store.claim(NOW + dt.timedelta(seconds=61), lease=60)
    assert again.id == first.id and again.references == first.references
    store.sent(again, 1, 0, NOW + dt.timedelta(seconds=62))
    assert store.claim(NOW + dt.timedelta(days=1)) == []
    [row] = store.rows(status="sent")
    assert (row["committed"], row["failed"], row["lease_until"]) == (1, 0, None)
