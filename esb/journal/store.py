"""The engine's side of the journal: accept, complete, claim, deliver.

All methods are synchronous and short; the runtime calls them in worker threads
so any DB-API driver works (psycopg, oracledb, pyodbc) without an async port.
Claims are row leases (``claimed_by``, ``lease_until``) taken with ``SKIP LOCKED``
where the dialect has it and with a conditional update everywhere, so any
number of engine nodes can share one database and a node that dies simply lets
its leases run out.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from esb.errors import NotFoundError
from esb.exchange import Exchange
from esb.journal import database
from esb.journal.schema import attempts, deliveries, messages, timer_ticks
from esb.routes.model import RetryPolicy

log = logging.getLogger("esb.journal")

FINAL_MESSAGE_STATES = ("processed", "filtered", "failed")
#: deliveries that keep their message from being pruned
OPEN_DELIVERY_STATES = ("pending", "inflight", "dead")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _id() -> str:
    return uuid.uuid4().hex


@dataclass
class NewDelivery:
    destination: str
    body: bytes
    headers: dict[str, str]
    retry: RetryPolicy
    #: 'dead' for dead-letter endpoints: parked at once for an admin to look at
    status: str = "pending"
    error: str | None = None
    id: str = field(default_factory=_id)


@dataclass
class ClaimedDelivery:
    id: str
    message_id: str
    route_id: str
    destination: str
    attempts: int
    max_attempts: int
    retry: RetryPolicy
    headers: dict[str, str]
    body: bytes


@dataclass
class ClaimedMessage:
    id: str
    route_id: str
    headers: dict[str, str]
    body: bytes
    correlation_id: str | None
    attempts: int


class Journal:
    """One node's handle on the journal; ``clock`` is naive UTC, swappable so tests need not wait."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str = "node",
        lease: float = 300.0,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.url = url
        self.engine: Engine = database.make_engine(url)
        self.node_id = node_id
        self.lease = dt.timedelta(seconds=lease)
        self.clock = clock
        self.skip_locked = self.engine.dialect.name in database.SKIP_LOCKED_DIALECTS

    def upgrade(self) -> None:
        database.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- inbound -------------------------------------------------------------------

    def accept(self, exchange: Exchange, *, route_id: str, source: str, store_mode: str, claim: bool) -> str:
        """Commit an inbound message; only then may the caller be answered."""
        now = self.clock()
        parent = exchange.message_id
        if parent is not None:
            exchange.properties.setdefault("parent_message_id", parent)
        message_id = _id()
        with self.engine.begin() as conn:
            conn.execute(
                insert(messages).values(
                    id=message_id,
                    route_id=route_id,
                    status="received",
                    received_at=now,
                    updated_at=now,
                    correlation_id=exchange.correlation_id,
                    source=source[:1000],
                    headers=dict(exchange.headers),
                    body=exchange.body,
                    body_size=len(exchange.body),
                    store_mode=store_mode,
                    replay_of=exchange.properties.get("replay_of"),
                    attempts=1 if claim else 0,
                    claimed_by=self.node_id if claim else None,
                    lease_until=now + self.lease if claim else None,
                )
            )
        exchange.message_id = message_id
        return message_id

    def complete(
        self,
        message_id: str,
        *,
        status: str,
        new_deliveries: Sequence[NewDelivery] = (),
        error: str | None = None,
    ) -> None:
        """Finish a message and queue its deliveries in one transaction.

        Only a message still ``received`` is finished: when a slow node's lease ran
        out and another node re-ran and finished the message first, the late
        finisher's deliveries would otherwise be queued a second time.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(messages.c.store_mode, messages.c.route_id).where(messages.c.id == message_id)
            ).first()
            if row is None:
                raise NotFoundError(f"message {message_id} is not in the journal")
            values: dict[str, Any] = {
                "status": status,
                "updated_at": now,
                "error": error,
                "claimed_by": None,
                "lease_until": None,
            }
            if row.store_mode == "metadata":
                values["body"] = None
            finished = conn.execute(
                update(messages).where(messages.c.id == message_id, messages.c.status == "received").values(**values)
            ).rowcount
            if not finished:
                log.info("message %s was already finished (by another node); its result is dropped", message_id)
                return
            self._queue(conn, message_id, row.route_id, new_deliveries, now)

    def _queue(
        self,
        conn: Connection,
        message_id: str,
        route_id: str,
        new_deliveries: Sequence[NewDelivery],
        now: dt.datetime,
    ) -> None:
        if not new_deliveries:
            return
        conn.execute(
            insert(deliveries),
            [
                {
                    "id": d.id,
                    "message_id": message_id,
                    "route_id": route_id,
                    "destination": d.destination,
                    "status": d.status,
                    "attempts": 0,
                    "max_attempts": d.retry.max_attempts,
                    "delay": d.retry.delay,
                    "multiplier": d.retry.multiplier,
                    "max_delay": d.retry.max_delay,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "last_error": d.error,
                    "headers": d.headers,
                    "body": d.body,
                }
                for d in new_deliveries
            ],
        )

    def claim_messages(self, limit: int, route_ids: Sequence[str]) -> list[ClaimedMessage]:
        """Messages whose route never completed (crash, replay, other node died)."""
        now = self.clock()
        claimable = and_(
            messages.c.status == "received",
            messages.c.route_id.in_(route_ids),
            or_(messages.c.lease_until.is_(None), messages.c.lease_until < now),
        )
        out: list[ClaimedMessage] = []
        with self.engine.begin() as conn:
            query = select(messages.c.id, messages.c.lease_until).where(claimable)
            query = query.order_by(messages.c.received_at).limit(limit)
            if self.skip_locked:
                query = query.with_for_update(skip_locked=True)
            for candidate in conn.execute(query).all():
                won = conn.execute(
                    update(messages)
                    .where(messages.c.id == candidate.id, claimable)
                    .values(
                        claimed_by=self.node_id,
                        lease_until=now + self.lease,
                        attempts=messages.c.attempts + 1,
                    )
                ).rowcount
                if not won:
                    continue
                row = conn.execute(select(messages).where(messages.c.id == candidate.id)).one()
                out.append(
                    ClaimedMessage(
                        row.id,
                        row.route_id,
                        dict(row.headers),
                        row.body or b"",
                        row.correlation_id,
                        row.attempts,
                    )  # fmt: skip
                )
        return out

    # -- outbound ------------------------------------------------------------------

    def claim_deliveries(self, limit: int, destinations: Sequence[str] | None = None) -> list[ClaimedDelivery]:
        now = self.clock()
        claimable = or_(
            and_(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now),
            and_(deliveries.c.status == "inflight", deliveries.c.lease_until < now),
        )
        out: list[ClaimedDelivery] = []
        with self.engine.begin() as conn:
            query = select(deliveries.c.id).where(claimable)
            if destinations is not None:
                query = query.where(deliveries.c.destination.in_(destinations))
            query = query.order_by(deliveries.c.next_attempt_at).limit(limit)
            if self.skip_locked:
                query = query.with_for_update(skip_locked=True)
            for (delivery_id,) in conn.execute(query).all():
                won = conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == delivery_id, claimable)
                    .values(
                        status="inflight",
                        claimed_by=self.node_id,
                        lease_until=now + self.lease,
                        attempts=deliveries.c.attempts + 1,
                        updated_at=now,
                    )
                ).rowcount
                if not won:
                    continue
                row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one()
                out.append(
                    ClaimedDelivery(
                        id=row.id,
                        message_id=row.message_id,
                        route_id=row.route_id,
                        destination=row.destination,
                        attempts=row.attempts,
                        max_attempts=row.max_attempts,
                        retry=RetryPolicy(row.max_attempts, row.delay, row.multiplier, row.max_delay),
                        headers=dict(row.headers),
                        body=row.body or b"",
                    )
                )
        return out

    def record_attempt(
        self,
        delivery: ClaimedDelivery,
        *,
        error: str | None,
        permanent: bool = False,
        duration_ms: float = 0.0,
    ) -> str:
        """Log one attempt and move the delivery on; returns its status afterwards.

        The claim is fenced by node *and* attempt number (each claim increments
        it): when this claim's lease ran out and another worker, even one of
        this node, claimed the row again, a late failure must not overwrite
        that newer claim. A late success still marks the row delivered, since
        the peer did get the message; any other late result leaves the row as
        it is and the row's current status is returned.
        """
        now = self.clock()
        if error is None:
            status = "delivered"
        elif permanent or delivery.attempts >= delivery.max_attempts:
            status = "dead"
        else:
            status = "pending"
        values: dict[str, Any] = {
            "status": status,
            "updated_at": now,
            "claimed_by": None,
            "lease_until": None,
            "last_error": error,
        }
        if status == "delivered":
            values["delivered_at"] = now
        if status == "pending":
            wait = delivery.retry.wait_before(delivery.attempts + 1)
            values["next_attempt_at"] = now + dt.timedelta(seconds=wait)
        with self.engine.begin() as conn:
            conn.execute(
                insert(attempts).values(
                    delivery_id=delivery.id,
                    attempt=delivery.attempts,
                    at=now,
                    node=self.node_id,
                    outcome="ok" if error is None else "error",
                    error=error,
                    duration_ms=duration_ms,
                )
            )
            ours = conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == delivery.id,
                    deliveries.c.status == "inflight",
                    deliveries.c.claimed_by == self.node_id,
                    deliveries.c.attempts == delivery.attempts,
                )
                .values(**values)
            ).rowcount
            if ours:
                return status
            if status == "delivered":
                late = conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == delivery.id, deliveries.c.status.in_(("pending", "inflight", "dead")))
                    .values(**values)
                ).rowcount
                if late:
                    return status
            current = conn.execute(select(deliveries.c.status).where(deliveries.c.id == delivery.id)).scalar()
        log.info(
            "delivery %s: attempt %d ended after its claim was lost; left %s", delivery.id, delivery.attempts, current
        )
        return str(current)

    def reclaim_own(self) -> tuple[int, int]:
        """At start-up: take back what this node had claimed when it last died.

        Without this a restarted single node would wait for its own leases to
        run out before resuming. Returns (messages, deliveries) made claimable.
        """
        with self.engine.begin() as conn:
            resumed = conn.execute(
                update(messages)
                .where(messages.c.status == "received", messages.c.claimed_by == self.node_id)
                .values(claimed_by=None, lease_until=None)
            ).rowcount
            requeued = conn.execute(
                update(deliveries)
                .where(deliveries.c.status == "inflight", deliveries.c.claimed_by == self.node_id)
                .values(status="pending", claimed_by=None, lease_until=None, next_attempt_at=self.clock())
            ).rowcount
        return resumed, requeued

    def release(self, delivery_ids: Sequence[str]) -> None:
        """Give back claims on shutdown so another node need not wait for the lease."""
        if not delivery_ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id.in_(delivery_ids),
                    deliveries.c.status == "inflight",
                    deliveries.c.claimed_by == self.node_id,
                )
                .values(
                    status="pending",
                    claimed_by=None,
                    lease_until=None,
                    attempts=deliveries.c.attempts - 1,
                )
            )

    # -- housekeeping --------------------------------------------------------------

    def claim_tick(self, route_id: str, tick: dt.datetime) -> bool:
        """True on the one node whose insert wins this timer tick.

        A lost race is an IntegrityError from the unique constraint; any other
        integrity problem is told apart by the winner's row not being there.
        """
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(timer_ticks).values(route_id=route_id, tick=tick, node=self.node_id))
            return True
        except IntegrityError:
            with self.engine.connect() as conn:
                taken = conn.execute(
                    select(timer_ticks.c.node).where(timer_ticks.c.route_id == route_id, timer_ticks.c.tick == tick)
                ).first()
            if taken is None:
                raise
            return False

    def prune(
        self,
        older_than: dt.timedelta | None,
        *,
        route_id: str | None = None,
        exclude_routes: Sequence[str] = (),
    ) -> int:
        """Remove finished messages: 'none' mode at once, others after retention.

        Works in batches; returns how many messages went (0 when nothing is left).
        ``route_id`` limits pruning to one route (its own ``retention``);
        ``exclude_routes`` spares the routes that have one.
        The deletes re-check for open deliveries, so a delivery queued on an old
        message meanwhile (``esb messages replay --to``) keeps it and is kept.
        """
        now = self.clock()
        done = messages.c.status.in_(FINAL_MESSAGE_STATES)
        open_deliveries = (
            select(deliveries.c.id)
            .where(deliveries.c.message_id == messages.c.id, deliveries.c.status.in_(OPEN_DELIVERY_STATES))
            .exists()
        )
        expired = messages.c.store_mode == "none"
        if older_than is not None:
            expired = or_(expired, messages.c.updated_at < now - older_than)
        if route_id is not None:
            expired = and_(expired, messages.c.route_id == route_id)
        if exclude_routes:
            expired = and_(expired, messages.c.route_id.not_in(exclude_routes))
        with self.engine.begin() as conn:
            conn.execute(delete(timer_ticks).where(timer_ticks.c.tick < now - dt.timedelta(days=1)))
            ids = [r.id for r in conn.execute(select(messages.c.id).where(done, expired, ~open_deliveries).limit(5000))]
            if not ids:
                return 0
            closed = and_(deliveries.c.message_id.in_(ids), deliveries.c.status.not_in(OPEN_DELIVERY_STATES))
            conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(select(deliveries.c.id).where(closed))))
            conn.execute(delete(deliveries).where(closed))
            return int(conn.execute(delete(messages).where(messages.c.id.in_(ids), ~open_deliveries)).rowcount)
