"""Helpers for journal tests: a hand-moved clock, a message and a delivery in one line, rows as dicts."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

from esb.exchange import Exchange
from esb.journal import Journal, NewDelivery, utcnow
from esb.journal.schema import deliveries, messages
from esb.routes.model import RetryPolicy

#: ``make_journal(node_id, lease=..., clock=...)`` from the conftest fixture
MakeJournal = Callable[..., Journal]


class Clock:
    """Naive-UTC time that moves only when a test says so (leases and backoff without waiting)."""

    def __init__(self) -> None:
        self.now = utcnow().replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def accept(
    journal: Journal, body: bytes = b"<msg/>", *, route: str = "r", store: str = "full", claim: bool = False
) -> str:
    exchange = Exchange(body=body, headers={"h": "1"}, correlation_id="corr-1")
    return journal.accept(exchange, route_id=route, source="test:in", store_mode=store, claim=claim)


def delivery(
    destination: str = "seda:out", *, body: bytes = b"<out/>", retry: RetryPolicy | None = None
) -> NewDelivery:
    return NewDelivery(destination=destination, body=body, headers={"d": "1"}, retry=retry or RetryPolicy())


def message_row(journal: Journal, message_id: str) -> dict[str, Any] | None:
    with journal.engine.connect() as conn:
        row = conn.execute(messages.select().where(messages.c.id == message_id)).first()
    return None if row is None else dict(row._mapping)


def delivery_rows(journal: Journal, message_id: str | None = None) -> list[dict[str, Any]]:
    query = deliveries.select().order_by(deliveries.c.created_at, deliveries.c.id)
    if message_id is not None:
        query = query.where(deliveries.c.message_id == message_id)
    with journal.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


async def stall(exchange: Exchange) -> None:
    """A route step that never ends: the node 'dies' holding the message (route files refer to it)."""
    await asyncio.Event().wait()
