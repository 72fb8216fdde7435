"""The admin side on a live journal: replay, and the dead-letter list, retry and drop."""

from __future__ import annotations

import pytest

from esb.errors import JournalError, NotFoundError
from esb.journal import Journal, NewDelivery, admin
from esb.routes.model import RetryPolicy
from tests.journal.helpers import Clock, accept, delivery, delivery_rows, message_row


def dead_delivery(journal: Journal, *, destination: str = "seda:out", route: str = "r") -> tuple[str, str]:
    """A processed message whose one delivery is dead after a permanent failure: (message id, delivery id)."""
    message_id = accept(journal, b"<keep/>", route=route, claim=True)
    queued = delivery(destination)
    journal.complete(message_id, status="processed", new_deliveries=[queued])
    (claimed,) = journal.claim_deliveries(1, [destination])
    assert journal.record_attempt(claimed, error="rejected", permanent=True) == "dead"
    return message_id, queued.id


def test_replay_runs_the_message_again_as_a_new_received_message(journal: Journal, clock: Clock) -> None:
    original = accept(journal, b"<again/>", claim=True)
    journal.complete(original, status="failed", error="boom")
    new_id = admin.replay(journal.engine, original)
    row = message_row(journal, new_id)
    assert row is not None
    assert (row["status"], row["replay_of"], row["body"], row["claimed_by"]) == (
        "received",
        original,
        b"<again/>",
        None,
    )
    clock.advance(60)
    (claimed,) = journal.claim_messages(10, ["r"])
    assert (claimed.id, claimed.body, claimed.headers) == (new_id, b"<again/>", {"h": "1"})


def test_replay_to_a_destination_queues_one_delivery(journal: Journal, clock: Clock) -> None:
    original = accept(journal, b"<again/>", claim=True)
    journal.complete(original, status="processed")
    delivery_id = admin.replay(journal.engine, original, to="seda:elsewhere")
    clock.advance(60)
    (claimed,) = journal.claim_deliveries(10)
    assert (claimed.id, claimed.message_id, claimed.destination, claimed.body) == (
        delivery_id, original, "seda:elsewhere", b"<again/>",
    )  # fmt: skip
    assert claimed.retry == RetryPolicy()


def test_replay_needs_a_kept_body_and_a_known_message(journal: Journal) -> None:
    message_id = accept(journal, store="metadata", claim=True)
    journal.complete(message_id, status="processed")
    with pytest.raises(JournalError, match=f"message {message_id} kept no body .*'metadata'"):
        admin.replay(journal.engine, message_id)
    with pytest.raises(NotFoundError, match="no message nope"):
        admin.replay(journal.engine, "nope")


def test_list_dead_filters_by_route_and_destination(journal: Journal) -> None:
    _, first = dead_delivery(journal, destination="seda:a", route="r")
    _, second = dead_delivery(journal, destination="seda:b", route="q")
    assert {d["id"] for d in admin.list_dead(journal.engine)} == {first, second}
    assert [d["id"] for d in admin.list_dead(journal.engine, route="q")] == [second]
    (row,) = admin.list_dead(journal.engine, destination="seda:a")
    assert (row["id"], row["status"], row["last_error"], row["attempts"]) == (first, "dead", "rejected", 1)


def test_retry_dead_queues_the_delivery_afresh(journal: Journal, clock: Clock) -> None:
    _, delivery_id = dead_delivery(journal)
    assert admin.retry_dead(journal.engine, [delivery_id]) == [delivery_id]
    assert admin.list_dead(journal.engine) == []
    clock.advance(60)
    (claimed,) = journal.claim_deliveries(10)
    assert (claimed.id, claimed.attempts) == (delivery_id, 1)
    assert journal.record_attempt(claimed, error=None) == "delivered"


def test_retry_of_a_parked_dead_letter_reruns_its_message(journal: Journal, clock: Clock) -> None:
    message_id = accept(journal, b"<parked/>", claim=True)
    parked = NewDelivery("dead-letter:r", b"<parked/>", {}, RetryPolicy(), status="dead", error="ValueError: x")
    journal.complete(message_id, status="failed", new_deliveries=[parked], error="ValueError: x")
    assert admin.retry_dead(journal.engine, everything=True) == [parked.id]
    (row,) = delivery_rows(journal, message_id)
    assert row["status"] == "retried"
    clock.advance(60)
    (rerun,) = journal.claim_messages(10, ["r"])
    assert rerun.body == b"<parked/>"
    replayed = message_row(journal, rerun.id)
    assert replayed is not None and replayed["replay_of"] == message_id


def test_drop_dead_keeps_the_row_marked_dropped(journal: Journal) -> None:
    _, delivery_id = dead_delivery(journal)
    _, other = dead_delivery(journal, route="q")
    assert admin.drop_dead(journal.engine, route="r") == [delivery_id]
    assert [d["id"] for d in admin.list_dead(journal.engine)] == [other]
    assert {r["id"]: r["status"] for r in delivery_rows(journal)} == {delivery_id: "dropped", other: "dead"}
    assert admin.drop_dead(journal.engine) == []  # neither ids, route nor everything: nothing


def test_retry_and_drop_name_ids_that_are_not_dead(journal: Journal) -> None:
    _, delivery_id = dead_delivery(journal)
    with pytest.raises(NotFoundError, match="not in dead letter: absent"):
        admin.retry_dead(journal.engine, [delivery_id, "absent"])
    with pytest.raises(NotFoundError, match="not in dead letter: absent"):
        admin.drop_dead(journal.engine, ["absent"])
    assert [d["id"] for d in admin.list_dead(journal.engine)] == [delivery_id]
