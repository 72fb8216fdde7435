"""The admin side of the journal: list, show, search, replay, dead letter.

These work on the database alone, so ``esb`` commands work against a running
cluster from any machine that reaches its database, with no engine process.
The engines pick replayed messages and retried deliveries up within a second.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from esb.errors import JournalError, NotFoundError
from esb.journal.schema import attempts, deliveries, messages
from esb.journal.store import utcnow
from esb.routes.model import RetryPolicy

MESSAGE_COLUMNS = (
    "id", "route_id", "status", "received_at", "updated_at", "correlation_id",
    "source", "body_size", "store_mode", "error", "replay_of", "attempts",
)  # fmt: skip
DELIVERY_COLUMNS = (
    "id", "message_id", "route_id", "destination", "status", "attempts", "max_attempts",
    "next_attempt_at", "created_at", "updated_at", "delivered_at", "last_error",
)  # fmt: skip


def _row(row: Any, columns: Sequence[str]) -> dict[str, Any]:
    mapping = row._mapping
    return {c: mapping[c] for c in columns if c in mapping}


def queue_depths(engine: Engine) -> list[tuple[str, str, int]]:
    query = (
        select(deliveries.c.destination, deliveries.c.status, func.count())
        .where(deliveries.c.status.in_(("pending", "inflight", "dead")))
        .group_by(deliveries.c.destination, deliveries.c.status)
    )
    with engine.connect() as conn:
        return [(d, s, int(n)) for d, s, n in conn.execute(query)]


def route_counts(engine: Engine) -> dict[str, dict[str, int]]:
    query = select(messages.c.route_id, messages.c.status, func.count()).group_by(
        messages.c.route_id, messages.c.status
    )
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for route_id, status, count in conn.execute(query):
            out.setdefault(route_id, {})[status] = int(count)
    return out


def list_messages(
    engine: Engine,
    *,
    route: str | None = None,
    status: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    query = select(*[messages.c[c] for c in MESSAGE_COLUMNS])
    if route:
        query = query.where(messages.c.route_id == route)
    if status:
        query = query.where(messages.c.status == status)
    if since:
        query = query.where(messages.c.received_at >= since)
    if until:
        query = query.where(messages.c.received_at < until)
    query = query.order_by(messages.c.received_at.desc()).limit(limit)
    with engine.connect() as conn:
        return [_row(r, MESSAGE_COLUMNS) for r in conn.execute(query)]


def search_messages(
    engine: Engine,
    text: str,
    *,
    route: str | None = None,
    status: str | None = None,
    since: dt.datetime | None = None,
    limit: int = 50,
) -> Iterator[dict[str, Any]]:
    """Messages whose body or headers contain ``text``.

    Bodies are bytes in any charset, so matching happens here rather than in
    SQL (where each dialect casts binary differently); the filters narrow the
    scan and rows are streamed.
    """
    needle = text.encode("utf-8")
    lowered = text.lower()
    query = select(messages)
    if route:
        query = query.where(messages.c.route_id == route)
    if status:
        query = query.where(messages.c.status == status)
    if since:
        query = query.where(messages.c.received_at >= since)
    query = query.order_by(messages.c.received_at.desc())
    found = 0
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=500).execute(query):
            in_headers = any(lowered in f"{k}={v}".lower() for k, v in (row.headers or {}).items())
            if in_headers or (row.body is not None and needle in row.body):
                yield _row(row, MESSAGE_COLUMNS)
                found += 1
                if found >= limit:
                    return


def get_message(engine: Engine, message_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
        if row is None:
            raise NotFoundError(f"no message {message_id}")
        out = _row(row, MESSAGE_COLUMNS)
        out["headers"] = row.headers
        out["body"] = row.body
        out["deliveries"] = []
        for d in conn.execute(
            select(deliveries).where(deliveries.c.message_id == message_id).order_by(deliveries.c.created_at)
        ):
            item = _row(d, DELIVERY_COLUMNS)
            item["attempt_log"] = [
                {k: a._mapping[k] for k in ("attempt", "at", "node", "outcome", "error", "duration_ms")}
                for a in conn.execute(select(attempts).where(attempts.c.delivery_id == d.id).order_by(attempts.c.id))
            ]
            out["deliveries"].append(item)
    return out


def replay(engine: Engine, message_id: str, *, to: str | None = None) -> str:
    """Run a message through its route again, or deliver it once more to ``to``.

    Returns the id of the new message (route replay) or the new delivery.
    """
    now = utcnow()
    new_id = uuid.uuid4().hex
    with engine.begin() as conn:
        row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
        if row is None:
            raise NotFoundError(f"no message {message_id}")
        if row.body is None:
            raise JournalError(
                f"message {message_id} kept no body (route store mode '{row.store_mode}'); it cannot be replayed"
            )
        if to is None:
            conn.execute(
                insert(messages).values(
                    id=new_id,
                    route_id=row.route_id,
                    status="received",
                    received_at=now,
                    updated_at=now,
                    correlation_id=row.correlation_id,
                    source=row.source,
                    headers=row.headers,
                    body=row.body,
                    body_size=row.body_size,
                    store_mode=row.store_mode,
                    replay_of=message_id,
                    attempts=0,
                )  # fmt: skip
            )
        else:
            _queue_copy(conn, new_id, message_id, row.route_id, to, RetryPolicy(), row.headers, row.body, now)
    return new_id


def _queue_copy(
    conn: Any,
    new_id: str,
    message_id: str,
    route_id: str,
    destination: str,
    policy: RetryPolicy,
    headers: dict[str, str],
    body: bytes,
    now: dt.datetime,
) -> None:
    """A new pending delivery of ``body`` to ``destination`` (replay --to, resend)."""
    conn.execute(
        insert(deliveries).values(
            id=new_id,
            message_id=message_id,
            route_id=route_id,
            destination=destination,
            status="pending",
            attempts=0,
            max_attempts=policy.max_attempts,
            delay=policy.delay,
            multiplier=policy.multiplier,
            max_delay=policy.max_delay,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
            headers=headers,
            body=body,
        )  # fmt: skip
    )


def list_dead(
    engine: Engine, *, route: str | None = None, destination: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    query = select(*[deliveries.c[c] for c in DELIVERY_COLUMNS]).where(deliveries.c.status == "dead")
    if route:
        query = query.where(deliveries.c.route_id == route)
    if destination:
        query = query.where(deliveries.c.destination == destination)
    query = query.order_by(deliveries.c.updated_at.desc()).limit(limit)
    with engine.connect() as conn:
        return [_row(r, DELIVERY_COLUMNS) for r in conn.execute(query)]


def _dead_ids(engine: Engine, ids: Sequence[str], route: str | None, everything: bool) -> list[str]:
    query = select(deliveries.c.id).where(deliveries.c.status == "dead")
    if ids:
        query = query.where(deliveries.c.id.in_(ids))
    elif route:
        query = query.where(deliveries.c.route_id == route)
    elif not everything:
        return []
    with engine.connect() as conn:
        found = [r.id for r in conn.execute(query)]
    missing = set(ids) - set(found)
    if missing:
        raise NotFoundError(f"not in dead letter: {', '.join(sorted(missing))}")
    return found


def retry_dead(
    engine: Engine, ids: Sequence[str] = (), *, route: str | None = None, everything: bool = False
) -> list[str]:
    """Queue dead deliveries again; a parked ``dead-letter:`` message is re-run through its route."""
    chosen = _dead_ids(engine, ids, route, everything)
    now = utcnow()
    with engine.begin() as conn:
        rows = conn.execute(select(deliveries).where(deliveries.c.id.in_(chosen))).all() if chosen else []
        for row in rows:
            if row.destination.startswith("dead-letter:"):
                conn.execute(
                    update(deliveries).where(deliveries.c.id == row.id).values(status="retried", updated_at=now)
                )
            else:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == row.id, deliveries.c.status == "dead")
                    .values(
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        updated_at=now,
                        claimed_by=None,
                        lease_until=None,
                    )  # fmt: skip
                )
    for row in rows:
        if row.destination.startswith("dead-letter:"):
            replay(engine, row.message_id)
    return chosen


def drop_dead(
    engine: Engine, ids: Sequence[str] = (), *, route: str | None = None, everything: bool = False
) -> list[str]:
    """Give up on dead deliveries; the rows stay, marked ``dropped``, for the record."""
    chosen = _dead_ids(engine, ids, route, everything)
    if chosen:
        with engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(chosen), deliveries.c.status == "dead")
                .values(status="dropped", updated_at=utcnow())
            )
    return chosen


def select_dead(
    engine: Engine, ids: Sequence[str] = (), *, route: str | None = None, everything: bool = False
) -> list[str]:
    """The dead deliveries a retry or drop would touch, so a caller can work in batches.

    Raises :class:`NotFoundError` naming the ids that are not in dead letter.
    """
    return _dead_ids(engine, ids, route, everything)


def deliveries_to(
    engine: Engine, destination: str, *, status: str | None = None, limit: int = 100, with_headers: bool = False
) -> list[dict[str, Any]]:
    """The delivery log of one destination (a listener's URI), newest first.

    ``with_headers`` adds each row's headers (a listener's event kind and the
    delivery it resends are there); bodies are never read.
    """
    columns = (*DELIVERY_COLUMNS, "headers") if with_headers else DELIVERY_COLUMNS
    query = select(*[deliveries.c[c] for c in columns]).where(deliveries.c.destination == destination)
    if status:
        query = query.where(deliveries.c.status == status)
    with engine.connect() as conn:
        return [_row(r, columns) for r in conn.execute(query.order_by(deliveries.c.created_at.desc()).limit(limit))]


def delivery_counts(engine: Engine, destinations: Sequence[str]) -> dict[str, dict[str, int]]:
    """Deliveries per destination and status, for the given destinations (one grouped query)."""
    if not destinations:
        return {}
    query = (
        select(deliveries.c.destination, deliveries.c.status, func.count())
        .where(deliveries.c.destination.in_(sorted(set(destinations))))
        .group_by(deliveries.c.destination, deliveries.c.status)
    )
    out: dict[str, dict[str, int]] = {d: {} for d in destinations}
    with engine.connect() as conn:
        for destination, status, count in conn.execute(query):
            out[destination][status] = int(count)
    return out


def resend_delivery(engine: Engine, delivery_id: str) -> str:
    """Queue a copy of one delivery (same body, headers and destination); returns the new id.

    For a listener this is "send that one message to that one listener again"
    (A1.16); the original row and its attempt log stay as they were.
    """
    now = utcnow()
    new_id = uuid.uuid4().hex
    with engine.begin() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            raise NotFoundError(f"no delivery {delivery_id}")
        if row.body is None:
            raise JournalError(f"delivery {delivery_id} kept no body; it cannot be resent")
        policy = RetryPolicy(row.max_attempts, row.delay, row.multiplier, row.max_delay)
        headers = {**row.headers, "esb-resend-of": delivery_id}
        _queue_copy(conn, new_id, row.message_id, row.route_id, row.destination, policy, headers, row.body, now)
    return new_id
