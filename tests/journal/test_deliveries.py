"""Delivery attempts: success, backoff, dead letter, release, and claims that ran out."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from esb.journal import Journal
from esb.journal.schema import attempts
from esb.journal.store import ClaimedDelivery
from esb.routes.model import RetryPolicy
from tests.journal.helpers import Clock, MakeJournal, accept, delivery, delivery_rows

POLICY = RetryPolicy(max_attempts=4, delay=2.0, multiplier=3.0, max_delay=10.0)


def queue(journal: Journal, retry: RetryPolicy = POLICY, count: int = 1) -> list[str]:
    message_id = accept(journal, claim=True)
    queued = [delivery(f"seda:d{i}", retry=retry) for i in range(count)]
    journal.complete(message_id, status="processed", new_deliveries=queued)
    return [d.id for d in queued]


def claim_one(journal: Journal) -> ClaimedDelivery:
    (claimed,) = journal.claim_deliveries(10)
    return claimed


def attempt_log(journal: Journal, delivery_id: str) -> list[tuple[int, str, str, str | None]]:
    query = select(attempts.c.attempt, attempts.c.node, attempts.c.outcome, attempts.c.error)
    with journal.engine.connect() as conn:
        rows = conn.execute(query.where(attempts.c.delivery_id == delivery_id).order_by(attempts.c.id))
        return [(r.attempt, r.node, r.outcome, r.error) for r in rows]


def test_success_marks_delivered_and_logs_the_attempt(journal: Journal, clock: Clock) -> None:
    (delivery_id,) = queue(journal)
    claimed = claim_one(journal)
    clock.advance(1)
    assert journal.record_attempt(claimed, error=None, duration_ms=12.5) == "delivered"
    (row,) = delivery_rows(journal)
    assert (row["status"], row["delivered_at"], row["claimed_by"], row["lease_until"]) == (
        "delivered", clock.now, None, None,
    )  # fmt: skip
    assert attempt_log(journal, delivery_id) == [(1, "n1", "ok", None)]
    assert journal.claim_deliveries(10) == []


def test_failures_back_off_by_the_retry_policy_then_go_dead(journal: Journal, clock: Clock) -> None:
    (delivery_id,) = queue(journal)
    for attempt in range(1, POLICY.max_attempts):
        claimed = claim_one(journal)
        assert claimed.attempts == attempt
        assert journal.record_attempt(claimed, error=f"refused {attempt}") == "pending"
        wait = POLICY.wait_before(attempt + 1)
        assert wait == [2.0, 6.0, 10.0][attempt - 1]  # 2, 2*3, 2*9 capped at 10
        (row,) = delivery_rows(journal)
        assert (row["status"], row["last_error"], row["claimed_by"]) == ("pending", f"refused {attempt}", None)
        assert row["next_attempt_at"] == clock.now + dt.timedelta(seconds=wait)
        clock.advance(wait - 0.5)
        assert journal.claim_deliveries(10) == []  # not before its time
        clock.advance(0.5)
    last = claim_one(journal)
    assert last.attempts == POLICY.max_attempts
    assert journal.record_attempt(last, error="refused 4") == "dead"
    (row,) = delivery_rows(journal)
    assert (row["status"], row["attempts"], row["last_error"]) == ("dead", 4, "refused 4")
    clock.advance(3600)
    assert journal.claim_deliveries(10) == []
    assert [a[0] for a in attempt_log(journal, delivery_id)] == [1, 2, 3, 4]


def test_a_permanent_failure_is_dead_at_once(journal: Journal) -> None:
    (delivery_id,) = queue(journal)
    claimed = claim_one(journal)
    assert journal.record_attempt(claimed, error="no such mailbox", permanent=True) == "dead"
    (row,) = delivery_rows(journal)
    assert (row["status"], row["attempts"]) == ("dead", 1)
    assert attempt_log(journal, delivery_id) == [(1, "n1", "error", "no such mailbox")]


def test_release_gives_claims_back_at_once(make_journal: MakeJournal) -> None:
    leaving, other = make_journal("leaving"), make_journal("other")
    ids = queue(leaving, count=3)
    claimed = leaving.claim_deliveries(10)
    assert sorted(d.id for d in claimed) == sorted(ids)
    other.release(ids)  # not its claims: nothing happens
    assert other.claim_deliveries(10) == []
    leaving.release(ids[:2])
    rows = {r["id"]: r for r in delivery_rows(leaving)}
    assert [(rows[i]["status"], rows[i]["claimed_by"], rows[i]["attempts"]) for i in ids] == [
        ("pending", None, 0), ("pending", None, 0), ("inflight", "leaving", 1),
    ]  # fmt: skip
    assert sorted(d.id for d in other.claim_deliveries(10)) == sorted(ids[:2])
    leaving.release([])


def test_an_expired_delivery_lease_lets_another_node_claim(make_journal: MakeJournal, clock: Clock) -> None:
    dead, alive = make_journal("dead", lease=5), make_journal("alive", lease=5)
    queue(dead)
    assert claim_one(dead).attempts == 1
    clock.advance(4)
    assert alive.claim_deliveries(10) == []
    clock.advance(2)
    retaken = claim_one(alive)
    assert retaken.attempts == 2
    assert alive.record_attempt(retaken, error=None) == "delivered"


def test_a_late_failure_does_not_undo_a_newer_claim(make_journal: MakeJournal, clock: Clock) -> None:
    slow, other = make_journal("slow", lease=5), make_journal("other", lease=5)
    (delivery_id,) = queue(slow)
    stale = claim_one(slow)
    clock.advance(6)
    fresh = claim_one(other)
    assert slow.record_attempt(stale, error="timed out") == "inflight"
    (row,) = delivery_rows(slow)
    assert (row["status"], row["claimed_by"], row["attempts"]) == ("inflight", "other", 2)
    assert other.record_attempt(fresh, error=None) == "delivered"
    assert attempt_log(slow, delivery_id) == [(1, "slow", "error", "timed out"), (2, "other", "ok", None)]


def test_a_late_success_still_counts(make_journal: MakeJournal, clock: Clock) -> None:
    """Same node, two workers: the row's attempt number tells the claims apart."""
    node = make_journal("node", lease=5)
    queue(node)
    stale = claim_one(node)
    clock.advance(6)
    fresh = claim_one(node)
    assert node.record_attempt(stale, error=None) == "delivered"
    assert node.record_attempt(fresh, error="refused") == "delivered"
    (row,) = delivery_rows(node)
    assert (row["status"], row["last_error"]) == ("delivered", None)
