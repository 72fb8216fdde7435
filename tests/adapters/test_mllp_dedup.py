"""The MLLP duplicate store on SQLite and PostgreSQL, with a clock the test moves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from adapters.mllp.dedup import PENDING_GRACE, Answer, DedupKey, DedupStore, Seen
from esb.exchange import Exchange
from esb.journal import Journal
from esb.journal.schema import mllp_dedup

START = dt.datetime(2026, 11, 29, 12, 0, 0)
KEY = DedupKey.of("adt", "HIS", "HOSP", "C-1")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(db_url: str, clock: Clock) -> Iterator[Journal]:
    journal = Journal(db_url, node_id="n1", clock=clock)
    journal.upgrade()
    yield journal
    journal.close()


def rows(journal: Journal) -> list[dict[str, object]]:
    with journal.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(mllp_dedup)).mappings()]


def test_claim_record_and_window(journal: Journal, clock: Clock) -> None:
    store = DedupStore(journal, window=600)
    assert store.claim(KEY, "corr-1") is None
    assert store.claim(KEY, "corr-2") == Seen(ack_code=None)  # pending, nothing journaled yet
    store.record([Answer(KEY, "corr-1", "AE", "m-1", "207", "boom")])
    store.record([Answer(KEY, "corr-x", "AA", "m-x")])  # not the claimant: ignored
    assert store.claim(KEY, "corr-2") == Seen("AE", "207", "boom", "m-1")
    assert store.claim(DedupKey.of("adt", "HIS", "OTHER", "C-1"), "corr-3") is None
    clock.advance(601)
    assert store.claim(KEY, "corr-4") is None  # expired: the new copy is processed
    assert {r["correlation_id"] for r in rows(journal)} == {"corr-4", "corr-3"}
    assert store.prune("adt") == 1  # corr-3 is 601 s old; corr-4 was claimed just now
    clock.advance(601)
    assert store.prune("other-route") == 0 and store.prune("adt") == 1 and rows(journal) == []


def test_pending_rows_are_resolved_through_the_journal(journal: Journal, clock: Clock) -> None:
    store = DedupStore(journal, window=600)
    exchange = Exchange(body=b"MSH|...")
    assert exchange.correlation_id is not None
    assert store.claim(KEY, exchange.correlation_id) is None
    message_id = journal.accept(exchange, route_id="adt", source="mllp:", store_mode="full", claim=True)
    seen = store.claim(KEY, "corr-late")
    assert seen == Seen(ack_code=None, message_id=message_id, journal_status="received")
    clock.advance(PENDING_GRACE + 1)  # journaled, so never given up, whatever its age
    assert store.claim(KEY, "corr-late") == seen
    assert store.peek(KEY) == seen
    other = DedupKey.of("adt", "HIS", "HOSP", "C-2")
    assert store.claim(other, "lost") is None  # its node died before journaling it
    clock.advance(PENDING_GRACE - 1)
    assert store.claim(other, "retry") == Seen(ack_code=None)
    clock.advance(2)
    assert store.claim(other, "retry") is None
    store.release(other, "lost")  # the old claimant cannot drop the new claim
    assert store.peek(other) == Seen(ack_code=None)
    store.release(other, "retry")
    assert store.peek(other) is None
