"""Inbound duplicate control (esb.journal.inbound), on SQLite and PostgreSQL, and through a route."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from esb.errors import DuplicateMessageError
from esb.exchange import DEDUP_KEY, Exchange
from esb.journal import Journal
from esb.journal.inbound import KEY_LENGTH, stored_key
from esb.journal.schema import inbound_keys, messages
from esb.runtime.engine import Engine
from tests.conftest import write_routes
from tests.journal.helpers import Clock, MakeJournal


def _accept(journal: Journal, key: str, *, route: str = "r", store: str = "full") -> str:
    exchange = Exchange(body=b"<m/>", headers={})
    return journal.accept(exchange, route_id=route, source="test:in", store_mode=store, claim=True, key=key)


def _count(journal: Journal, table: object) -> int:
    with journal.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_a_key_is_taken_once_per_route(journal: Journal) -> None:
    first = _accept(journal, "row:1")
    with pytest.raises(DuplicateMessageError) as raised:
        _accept(journal, "row:1")
    assert raised.value.message_id == first
    other_route = _accept(journal, "row:1", route="r2")
    assert other_route != first
    assert _count(journal, messages) == 2


def test_a_key_whose_message_failed_is_taken_again(journal: Journal) -> None:
    """A row rejected for bad data, fixed and read again, is a new message; a processed one is not."""
    first = _accept(journal, "row:7")
    journal.complete(first, status="failed", error="ValueError: bad birth date")
    second = _accept(journal, "row:7")
    assert second != first
    journal.complete(second, status="processed")
    with pytest.raises(DuplicateMessageError) as raised:
        _accept(journal, "row:7")
    assert raised.value.message_id == second


def test_a_long_key_is_stored_as_its_digest(journal: Journal) -> None:
    key = "etl:v_patients:" + "x" * 300
    assert len(stored_key(key)) <= KEY_LENGTH and stored_key(key) == stored_key(key)
    assert stored_key(key) != stored_key(key + "y")
    _accept(journal, key)
    with pytest.raises(DuplicateMessageError):
        _accept(journal, key)


def test_a_key_outlives_its_pruned_message_until_its_own_retention(journal: Journal, clock: Clock) -> None:
    """store: none routes keep no message, yet a redelivery an hour later is still a duplicate."""
    first = _accept(journal, "frame:1", store="none")
    journal.complete(first, status="processed")
    clock.advance(3600)
    while journal.prune(dt.timedelta(days=1)):
        pass
    assert _count(journal, messages) == 0
    with pytest.raises(DuplicateMessageError):
        _accept(journal, "frame:1")
    clock.advance(2 * 86400)
    while journal.prune(dt.timedelta(days=1)):
        pass
    assert _count(journal, inbound_keys) == 0
    _accept(journal, "frame:1")


def _race(nodes: list[Journal], key: str) -> list[str]:
    """Every node takes ``key`` at the same moment; what each got ("taken:ID" or "duplicate:ID")."""
    barrier = threading.Barrier(len(nodes))
    results: list[str] = []
    lock = threading.Lock()

    def take(node: Journal) -> None:
        barrier.wait()
        try:
            outcome = "taken:" + _accept(node, key)
        except DuplicateMessageError as exc:
            outcome = "duplicate:" + exc.message_id
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=take, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_nodes_taking_one_key_at_once_journal_one_message(make_journal: MakeJournal) -> None:
    nodes = [make_journal(f"n{i}") for i in range(4)]
    for round_ in range(10):
        results = _race(nodes, f"row:{round_}")
        taken = [r for r in results if r.startswith("taken:")]
        assert len(taken) == 1, results
        assert {r.split(":", 1)[1] for r in results} == {taken[0].split(":", 1)[1]}
    assert _count(nodes[0], messages) == 10


ROUTE = """
route:
  id: keyed
  from: direct:keyed
  steps:
    - log: taken
"""


async def test_a_route_answers_a_repeated_key_as_duplicate(
    start_engine: Callable[..., Awaitable[Engine]], tmp_path: Path, db_url: str
) -> None:
    write_routes(tmp_path / "routes", {"keyed": ROUTE})
    engine = await start_engine(db_url=db_url)
    runner = engine.routes["keyed"]
    first = Exchange(body=b"one", headers={})
    first.properties[DEDUP_KEY] = "sender-id-1"
    taken = await runner.handle(first, True)
    assert taken.status == "processed" and taken.message_id is not None
    again = Exchange(body=b"one", headers={})
    again.properties[DEDUP_KEY] = "sender-id-1"
    repeat = await runner.handle(again, True)
    assert (repeat.status, repeat.message_id) == ("duplicate", taken.message_id)
    assert engine.context.metrics.duplicates.labels("keyed")._value.get() == 1
    plain = await runner.handle(Exchange(body=b"one", headers={}), True)
    assert plain.status == "processed" and plain.message_id != taken.message_id
