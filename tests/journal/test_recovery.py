"""Two engine nodes on one journal: what a crashed node held is finished by the other.

Node A takes a message and dies in the middle of its route, and dies holding
a claimed delivery; it neither completes nor releases anything (its tasks are
cancelled and its connections dropped, as a ``kill -9`` would). Node B, started
afterwards on the same database, must re-run the message and send the delivery
once their leases (``delivery_lease``, 1 s here) have run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import select

from esb.exchange import Exchange
from esb.journal import admin
from esb.journal.schema import attempts, deliveries, messages
from esb.runtime.engine import Engine
from tests.conftest import write_routes
from tests.support import wait_for

LEASE = 1.0

ROUTES = {
    "feed": """
        route:
          id: feed
          from: seda:feed
          steps:
            - to: seda:out
    """,
    "out": """
        route:
          id: out
          from: seda:out
          steps:
            - set-header: {name: seen, value: "yes"}
    """,
}


def route_in(*steps: str) -> str:
    lines = "".join(f"\n    - {step}" for step in steps)
    return f"route:\n  id: in\n  from: seda:in\n  steps:{lines}\n"


async def crash(engine: Engine) -> None:
    """Stop dead: no completion, no release of claims, connections gone."""
    tasks = [*engine._housekeeping, *engine.workers._tasks]
    for runner in engine.routes.values():
        tasks.extend(runner._tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # a cancelled task's database call may still run in its worker thread: let it
    # hand its connection back before the pool goes, as process death would end it
    pool = engine.journal.engine.pool
    deadline = asyncio.get_running_loop().time() + 5
    while pool.checkedout() and asyncio.get_running_loop().time() < deadline:  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
    engine.journal.engine.dispose()


async def test_work_of_a_crashed_node_is_finished_by_another(
    tmp_path: Path, start_engine: Callable[..., Awaitable[Engine]], db_url: str
) -> None:
    routes_a = write_routes(
        tmp_path / "routes-a", {**ROUTES, "in": route_in('transform: {python: "tests.journal.helpers:stall"}')}
    )
    routes_b = write_routes(tmp_path / "routes-b", {**ROUTES, "in": route_in("to: seda:out")})
    common = {"db_url": db_url, "delivery_lease": LEASE}
    node_a = await start_engine(node_id="a", route_paths=(routes_a,), delivery_workers=0, **common)

    accepted = await node_a.context.local_endpoints["seda:in"](Exchange(body=b"one"), False)
    assert accepted.status == "accepted"  # committed; the route now hangs in 'stall'
    fed = await node_a.context.local_endpoints["seda:feed"](Exchange(body=b"two"), True)
    assert fed.status == "processed"  # its delivery to seda:out is queued
    (held,) = await asyncio.to_thread(node_a.journal.claim_deliveries, 10)  # as A's worker would
    await crash(node_a)

    node_b = await start_engine(node_id="b", route_paths=(routes_b,), **common)
    db = node_b.journal.engine

    def finished() -> bool:
        counts = admin.route_counts(db)
        with db.connect() as conn:
            held_status = conn.execute(select(deliveries.c.status).where(deliveries.c.id == held.id)).scalar_one()
        done = counts.get("in") == {"processed": 1} and counts.get("out") == {"processed": 2}
        return done and held_status == "delivered"  # its attempt is recorded after the hand-over

    await wait_for(finished)
    with db.connect() as conn:
        rerun = conn.execute(select(messages.c.attempts).where(messages.c.id == accepted.message_id)).scalar_one()
        bodies = conn.execute(select(messages.c.body).where(messages.c.route_id == "out")).scalars().all()
        retaken = conn.execute(
            select(deliveries.c.status, deliveries.c.attempts).where(deliveries.c.id == held.id)
        ).one()
        log = conn.execute(select(attempts.c.attempt, attempts.c.node).where(attempts.c.delivery_id == held.id)).all()
    assert rerun == 2  # claimed by A on arrival, re-run by B
    assert sorted(bodies) == [b"one", b"two"]
    assert tuple(retaken) == ("delivered", 2)
    assert [tuple(a) for a in log] == [(2, "b")]  # A died before it could record its attempt
