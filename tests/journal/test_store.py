"""Journal.accept/complete, store modes, message claims and leases, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from esb.errors import NotFoundError
from esb.journal import Journal
from esb.journal.schema import deliveries
from esb.routes.model import RetryPolicy
from tests.journal.helpers import Clock, MakeJournal, accept, delivery, delivery_rows, message_row


def test_accept_commits_the_message_claimed_by_this_node(journal: Journal, clock: Clock) -> None:
    message_id = accept(journal, b"<a/>", claim=True)
    row = message_row(journal, message_id)
    assert row is not None
    assert (row["status"], row["route_id"], row["body"], row["body_size"]) == ("received", "r", b"<a/>", 4)
    assert (row["headers"], row["correlation_id"], row["source"]) == ({"h": "1"}, "corr-1", "test:in")
    assert (row["claimed_by"], row["lease_until"], row["attempts"]) == ("n1", clock.now + journal.lease, 1)


def test_complete_finishes_the_message_and_queues_its_deliveries(journal: Journal, clock: Clock) -> None:
    message_id = accept(journal, claim=True)
    retry = RetryPolicy(max_attempts=3, delay=0.5, multiplier=4.0, max_delay=9.0)
    journal.complete(
        message_id, status="processed", new_deliveries=[delivery("seda:a", retry=retry), delivery("seda:b")]
    )
    row = message_row(journal, message_id)
    assert row is not None
    assert (row["status"], row["claimed_by"], row["lease_until"], row["error"]) == ("processed", None, None, None)
    rows = delivery_rows(journal, message_id)
    assert sorted(r["destination"] for r in rows) == ["seda:a", "seda:b"]
    first = next(r for r in rows if r["destination"] == "seda:a")
    assert (first["status"], first["attempts"], first["next_attempt_at"]) == ("pending", 0, clock.now)
    assert (first["max_attempts"], first["delay"], first["multiplier"], first["max_delay"]) == (3, 0.5, 4.0, 9.0)
    assert (first["route_id"], first["headers"], first["body"]) == ("r", {"d": "1"}, b"<out/>")


def test_complete_is_all_or_nothing(journal: Journal) -> None:
    """A delivery that cannot be queued (here a duplicate id) leaves the message unfinished."""
    message_id = accept(journal, claim=True)
    twin = delivery()
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        journal.complete(message_id, status="processed", new_deliveries=[twin, twin])
    row = message_row(journal, message_id)
    assert row is not None and row["status"] == "received"
    assert delivery_rows(journal, message_id) == []


def test_complete_of_an_unknown_message_names_it(journal: Journal) -> None:
    with pytest.raises(NotFoundError, match="message nope is not in the journal"):
        journal.complete("nope", status="processed")


def test_a_message_is_finished_once(make_journal: MakeJournal, clock: Clock) -> None:
    """A slow node finishing after another node re-ran the message queues nothing twice."""
    slow, fast = make_journal("slow"), make_journal("fast")
    message_id = accept(slow, claim=True)
    clock.advance(61)
    assert [m.id for m in fast.claim_messages(10, ["r"])] == [message_id]
    fast.complete(message_id, status="processed", new_deliveries=[delivery()])
    slow.complete(message_id, status="failed", new_deliveries=[delivery(), delivery()], error="late")
    row = message_row(fast, message_id)
    assert row is not None and (row["status"], row["error"]) == ("processed", None)
    assert len(delivery_rows(fast, message_id)) == 1


@pytest.mark.parametrize(("store", "body_after"), [("full", b"<msg/>"), ("metadata", None), ("none", b"<msg/>")])
def test_store_mode_decides_what_completion_keeps(journal: Journal, store: str, body_after: bytes | None) -> None:
    message_id = accept(journal, store=store, claim=True)
    before = message_row(journal, message_id)
    assert before is not None and before["body"] == b"<msg/>"
    journal.complete(message_id, status="processed")
    after = message_row(journal, message_id)
    assert after is not None
    assert (after["body"], after["body_size"], after["headers"], after["store_mode"]) == (
        body_after,
        6,
        {"h": "1"},
        store,
    )
    assert journal.prune(None) == (1 if store == "none" else 0)
    assert (message_row(journal, message_id) is None) == (store == "none")


def test_claim_messages_takes_only_unclaimed_received_messages_of_the_given_routes(
    make_journal: MakeJournal, clock: Clock
) -> None:
    one, two = make_journal("one"), make_journal("two")
    free = accept(one, b"<free/>", claim=False)
    accept(one, claim=True)  # leased to "one"
    accept(one, route="other", claim=False)
    done = accept(one, claim=False)
    one.complete(done, status="filtered")
    claimed = two.claim_messages(10, ["r", "absent"])
    assert [(m.id, m.route_id, m.body, m.headers, m.correlation_id, m.attempts) for m in claimed] == [
        (free, "r", b"<free/>", {"h": "1"}, "corr-1", 1)
    ]
    row = message_row(two, free)
    assert row is not None and (row["claimed_by"], row["lease_until"]) == ("two", clock.now + two.lease)
    assert two.claim_messages(10, ["r"]) == []  # both remaining rows carry a live lease
    assert one.claim_messages(10, ["r"]) == []


def test_claim_messages_respects_the_limit_and_the_arrival_order(journal: Journal, clock: Clock) -> None:
    ids = []
    for _ in range(5):
        ids.append(accept(journal))
        clock.advance(1)
    assert [m.id for m in journal.claim_messages(2, ["r"])] == ids[:2]
    assert [m.id for m in journal.claim_messages(10, ["r"])] == ids[2:]


def test_an_expired_message_lease_lets_another_node_claim(make_journal: MakeJournal, clock: Clock) -> None:
    dead, alive = make_journal("dead", lease=30), make_journal("alive", lease=30)
    message_id = accept(dead, claim=True)
    clock.advance(29)
    assert alive.claim_messages(10, ["r"]) == []
    clock.advance(2)
    (claimed,) = alive.claim_messages(10, ["r"])
    assert (claimed.id, claimed.attempts) == (message_id, 2)
    row = message_row(alive, message_id)
    assert row is not None and row["claimed_by"] == "alive"
    assert dead.claim_messages(10, ["r"]) == []  # the new lease is live again


def test_claim_deliveries_only_for_the_given_destinations(journal: Journal) -> None:
    message_id = accept(journal, claim=True)
    journal.complete(message_id, status="processed", new_deliveries=[delivery("seda:a"), delivery("seda:b")])
    assert [d.destination for d in journal.claim_deliveries(10, ["seda:b", "seda:c"])] == ["seda:b"]
    (other,) = journal.claim_deliveries(10)
    assert (other.destination, other.attempts, other.message_id, other.route_id) == ("seda:a", 1, message_id, "r")
    assert (other.body, other.headers, other.retry) == (b"<out/>", {"d": "1"}, RetryPolicy())
    with journal.engine.connect() as conn:
        statuses = conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status)).all()
    assert [tuple(s) for s in statuses] == [("inflight", 2)]
