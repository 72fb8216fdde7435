"""Pruning by age and store mode, never while deliveries are open; timer ticks won by one node."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, insert, select, update

from esb.journal import Journal
from esb.journal.schema import attempts, deliveries, timer_ticks
from tests.journal.helpers import Clock, MakeJournal, accept, delivery, delivery_rows, message_row

DAY = dt.timedelta(days=1)


def finished(journal: Journal, *, store: str = "full", delivery_status: str | None = None) -> str:
    """A processed message, with one delivery left in ``delivery_status`` (and one attempt logged)."""
    message_id = accept(journal, store=store, claim=True)
    destination = f"seda:{message_id}"
    queued = [delivery(destination)] if delivery_status else []
    journal.complete(message_id, status="processed", new_deliveries=queued)
    if delivery_status:
        (claimed,) = journal.claim_deliveries(1, [destination])
        journal.record_attempt(claimed, error=None)
        with journal.engine.begin() as conn:
            conn.execute(update(deliveries).where(deliveries.c.id == claimed.id).values(status=delivery_status))
    return message_id


def count(journal: Journal, table: object) -> int:
    with journal.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_prune_by_age_keeps_young_and_unfinished_messages(journal: Journal, clock: Clock) -> None:
    old = finished(journal, delivery_status="delivered")
    unfinished = accept(journal)
    clock.advance(DAY.total_seconds() * 2)
    young = finished(journal)
    assert journal.prune(None) == 0
    assert journal.prune(DAY) == 1
    assert message_row(journal, old) is None
    assert delivery_rows(journal, old) == [] and count(journal, attempts) == 0
    assert message_row(journal, young) is not None and message_row(journal, unfinished) is not None
    assert journal.prune(DAY) == 0


def test_prune_per_route_retention(journal: Journal, clock: Clock) -> None:
    """A route with its own retention is pruned by it alone, and spared by the global one."""
    keep_long = accept(journal, route="archive", claim=True)
    journal.complete(keep_long, status="processed")
    short = accept(journal, route="chatty", claim=True)
    journal.complete(short, status="processed")
    clock.advance(DAY.total_seconds() * 2)
    assert journal.prune(DAY, exclude_routes=["archive"]) == 1
    assert message_row(journal, short) is None and message_row(journal, keep_long) is not None
    assert journal.prune(DAY * 7, route_id="archive") == 0
    clock.advance(DAY.total_seconds() * 7)
    assert journal.prune(DAY * 7, route_id="archive") == 1
    assert message_row(journal, keep_long) is None


@pytest.mark.parametrize("status", ["pending", "inflight", "dead"])
def test_prune_never_removes_a_message_with_open_deliveries(journal: Journal, clock: Clock, status: str) -> None:
    kept = finished(journal, store="none", delivery_status=status)
    gone = finished(journal, store="none", delivery_status="dropped")
    clock.advance(DAY.total_seconds() * 2)
    assert journal.prune(DAY) == 1
    assert message_row(journal, gone) is None
    assert message_row(journal, kept) is not None
    assert [r["status"] for r in delivery_rows(journal, kept)] == [status]
    assert count(journal, attempts) == 1


def test_none_mode_goes_once_done_and_its_deliveries_with_it(journal: Journal) -> None:
    message_id = finished(journal, store="none", delivery_status="delivered")
    running = accept(journal, store="none", claim=True)
    assert journal.prune(None) == 1
    assert message_row(journal, message_id) is None and count(journal, deliveries) == 0
    assert message_row(journal, running) is not None


def test_prune_drops_timer_ticks_older_than_a_day(journal: Journal, clock: Clock) -> None:
    assert journal.claim_tick("t", clock.now - 2 * DAY)
    assert journal.claim_tick("t", clock.now)
    assert journal.prune(None) == 0
    with journal.engine.connect() as conn:
        assert conn.execute(select(timer_ticks.c.tick)).scalars().all() == [clock.now]


def test_claim_tick_once_per_route_and_tick(make_journal: MakeJournal, clock: Clock) -> None:
    one, two = make_journal("one"), make_journal("two")
    assert one.claim_tick("t", clock.now)
    assert not two.claim_tick("t", clock.now)
    assert not one.claim_tick("t", clock.now)
    assert two.claim_tick("t", clock.now + dt.timedelta(seconds=1))
    assert two.claim_tick("u", clock.now)


def test_claim_tick_does_not_hide_other_integrity_errors(journal: Journal, clock: Clock) -> None:
    """Only a lost race is False; a broken insert (here a NULL route) still raises."""
    with pytest.raises(Exception, match="(?i)null"):
        journal.claim_tick(None, clock.now)  # type: ignore[arg-type]
    with journal.engine.begin() as conn:
        conn.execute(insert(timer_ticks).values(route_id="t", tick=clock.now, node="x"))
    assert not journal.claim_tick("t", clock.now)
