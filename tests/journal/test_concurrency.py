"""Several nodes claiming from one database at once: every row goes to exactly one of them.

Each node is its own Journal (own engine and connection pool), run in threads
that start together; on PostgreSQL this exercises ``FOR UPDATE SKIP LOCKED``, on
SQLite the conditional update under its single-writer lock.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import func, select

from esb.journal import Journal, utcnow
from esb.journal.schema import deliveries, messages
from tests.journal.helpers import MakeJournal, accept, delivery

T = TypeVar("T")
NODES = 3
THREADS_PER_NODE = 2  # two workers of one node must not share a row either


def race(nodes: Sequence[Journal], work: Callable[[Journal], T]) -> list[tuple[str, T]]:
    """Run ``work`` on every node from THREADS_PER_NODE threads each, all released at once."""
    start = threading.Barrier(len(nodes) * THREADS_PER_NODE)

    def run(node: Journal) -> tuple[str, T]:
        start.wait(timeout=10)
        return node.node_id, work(node)

    with ThreadPoolExecutor(max_workers=len(nodes) * THREADS_PER_NODE) as pool:
        futures = [pool.submit(run, node) for node in nodes for _ in range(THREADS_PER_NODE)]
        return [f.result(timeout=60) for f in futures]


def left(journal: Journal, query: object) -> int:
    with journal.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())  # type: ignore[call-overload]


def test_each_delivery_is_claimed_by_exactly_one_node(make_journal: MakeJournal) -> None:
    nodes = [make_journal(f"node-{i}", clock=utcnow) for i in range(NODES)]
    queued = [delivery(f"seda:d{i % 7}") for i in range(300)]
    message_id = accept(nodes[0], claim=True)
    nodes[0].complete(message_id, status="processed", new_deliveries=queued)
    pending = select(func.count()).select_from(deliveries).where(deliveries.c.status == "pending")

    def drain(node: Journal) -> list[str]:
        mine: list[str] = []
        while True:
            batch = node.claim_deliveries(5)
            mine.extend(d.id for d in batch)
            if not batch and left(node, pending) == 0:
                return mine

    results = race(nodes, drain)
    claims = Counter(delivery_id for _, ids in results for delivery_id in ids)
    assert set(claims) == {d.id for d in queued}
    assert set(claims.values()) == {1}
    owner = {delivery_id: node_id for node_id, ids in results for delivery_id in ids}
    with nodes[0].engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.id, deliveries.c.status, deliveries.c.claimed_by, deliveries.c.attempts)
        )
        assert {r.id: (r.status, r.claimed_by, r.attempts) for r in rows} == {
            i: ("inflight", node, 1) for i, node in owner.items()
        }


def test_each_unfinished_message_is_claimed_by_exactly_one_node(make_journal: MakeJournal) -> None:
    nodes = [make_journal(f"node-{i}", clock=utcnow) for i in range(NODES)]
    ids = {accept(nodes[0], route=f"r{i % 3}") for i in range(150)}
    unclaimed = select(func.count()).select_from(messages).where(messages.c.claimed_by.is_(None))

    def drain(node: Journal) -> list[str]:
        mine: list[str] = []
        while True:
            batch = node.claim_messages(4, ["r0", "r1", "r2"])
            mine.extend(m.id for m in batch)
            if not batch and left(node, unclaimed) == 0:
                return mine

    claims = Counter(message_id for _, got in race(nodes, drain) for message_id in got)
    assert set(claims) == ids
    assert set(claims.values()) == {1}


def test_one_node_wins_each_timer_tick(make_journal: MakeJournal) -> None:
    nodes = [make_journal(f"node-{i}", clock=utcnow) for i in range(NODES)]
    ticks = [utcnow().replace(microsecond=0) + dt.timedelta(seconds=s) for s in range(20)]

    def fire(node: Journal) -> list[bool]:
        return [node.claim_tick("timer", tick) for tick in ticks]

    results = race(nodes, fire)
    winners_per_tick = [sum(won[i] for _, won in results) for i in range(len(ticks))]
    assert winners_per_tick == [1] * len(ticks)
