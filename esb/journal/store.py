"""The engine's side of the journal: accept, complete, claim, deliver.

All methods are synchronous and short; the runtime calls them in worker threads
so any DB-API driver works (psycopg, oracledb, pyodbc) without an async port.
Claims are row leases (``claimed_by``, ``lease_until``), so any number of engine
nodes can share one database and a node that dies simply lets its leases run
out. A claim is one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING``
on PostgreSQL (whose subquery takes its rows ``FOR UPDATE SKIP LOCKED``) and on
SQLite (which runs one writer at a time, so the statement is atomic); elsewhere
it is a ``SELECT`` of candidates and a conditional update per row.

The hot-path statements are built once, at import, and take their values as
bound parameters: SQLAlchemy then compiles each of them once and finds it in its
cache by structure, where a statement built per call with literal values had its
cache key recomputed every time (about 40 % of ``accept()`` and ``complete()``).
A bound parameter that sits next to a column of the same name in a ``SET`` is
prefixed ``b_``; an ``UPDATE`` without ``.values()`` sets the columns named by
the execute parameters, so one statement serves every outcome.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    Engine,
    Integer,
    Row,
    Table,
    and_,
    bindparam,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement, Select, Update

from esb.errors import DuplicateMessageError, NotFoundError
from esb.exchange import Exchange
from esb.journal import database
from esb.journal.inbound import take_key
from esb.journal.prune import prune_finished
from esb.journal.schema import attempts, deliveries, messages, timer_ticks
from esb.journal.spool import discard_attachments, lists_attachments
from esb.routes.model import RetryPolicy

log = logging.getLogger("esb.journal")

#: dialects where a claim is one UPDATE ... RETURNING (tested on both); see the module docstring
ONE_STATEMENT_CLAIM_DIALECTS = frozenset({"postgresql", "sqlite"})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` as the journal's columns keep times: naive UTC (a naive one is taken as UTC already)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


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


# -- statements, built once ----------------------------------------------------------

_INSERT_MESSAGE = insert(messages)
_INSERT_DELIVERIES = insert(deliveries)
_INSERT_ATTEMPT = insert(attempts)
_MESSAGE_ROUTE = select(messages.c.store_mode, messages.c.route_id).where(messages.c.id == bindparam("b_id"))
#: SET status, updated_at, error, claimed_by, lease_until (and body for store 'metadata')
_FINISH_MESSAGE = update(messages).where(messages.c.id == bindparam("b_id"), messages.c.status == "received")
#: SET the attempt's outcome, if the claim is still this one (node and attempt number)
_RECORD_OURS = update(deliveries).where(
    deliveries.c.id == bindparam("b_id"),
    deliveries.c.status == "inflight",
    deliveries.c.claimed_by == bindparam("b_node"),
    deliveries.c.attempts == bindparam("b_attempt"),
)
#: SET a late success over whatever claim or retry came after it
_RECORD_LATE = update(deliveries).where(
    deliveries.c.id == bindparam("b_id"), deliveries.c.status.in_(("pending", "inflight", "dead"))
)
_DELIVERY_STATUS = select(deliveries.c.status).where(deliveries.c.id == bindparam("b_id"))

_NOW = bindparam("b_now", type_=DateTime())
_LEASE = bindparam("b_lease", type_=DateTime())
_LIMIT = bindparam("b_limit", type_=Integer())
_DELIVERY_COLUMNS = (
    deliveries.c.id, deliveries.c.message_id, deliveries.c.route_id, deliveries.c.destination,
    deliveries.c.attempts, deliveries.c.max_attempts, deliveries.c.delay, deliveries.c.multiplier,
    deliveries.c.max_delay, deliveries.c.headers, deliveries.c.body, deliveries.c.next_attempt_at,
)  # fmt: skip
_MESSAGE_COLUMNS = (
    messages.c.id, messages.c.route_id, messages.c.headers, messages.c.body,
    messages.c.correlation_id, messages.c.attempts, messages.c.received_at,
)  # fmt: skip


@dataclass(frozen=True)
class _Claim:
    """The statements of one kind of claim; ``batch`` where the dialect takes it in one, else the other three."""

    pick: Select[Any]  # candidate ids, oldest first
    take: Update  # the conditional update of one candidate (b_id)
    read: Select[Any]  # the claimed row (b_id)
    batch: Update | None  # all three in one statement, returning the claimed rows


def _claim(
    table: Table,
    parts: Sequence[ColumnElement[bool]],
    oldest: ColumnElement[Any],
    values: dict[str, Any],
    columns: Sequence[ColumnElement[Any]],
    *,
    lock: bool,
    one_statement: bool,
) -> _Claim:
    """Build a claim of the rows that match any of ``parts``, oldest first.

    The one-row update re-checks the condition, so a row taken meanwhile is not
    taken twice. In the one statement each part is picked on its own, ordered
    and limited, so each can walk its index in order (``status, next_attempt_at``
    for due deliveries) and stop after LIMIT rows, where one ``OR`` of the parts
    reads and sorts every due row, a cost that grew with the backlog.
    """
    table_ids = table.c.id
    claimable = or_(*parts)
    pick = select(table_ids).where(claimable).order_by(oldest).limit(_LIMIT)
    if lock:
        pick = pick.with_for_update(skip_locked=True)
    take = update(table).where(table_ids == bindparam("b_id"), claimable).values(**values)
    read = select(*columns).where(table_ids == bindparam("b_id"))
    if not one_statement:
        return _Claim(pick, take, read, None)
    # CTEs, materialized: as an IN (subquery) PostgreSQL may re-run the subquery
    # per row of a nested loop, each run locking LIMIT more rows. The condition
    # is not repeated outside them: the picked rows are locked (PostgreSQL
    # re-checks a row changed meanwhile before it locks it), or the statement
    # holds SQLite's one write lock; repeated, it makes SQLite's planner scan
    # every due row instead of looking up the picked ones.
    picks = []
    for index, part in enumerate(parts):
        one = select(table_ids, oldest.label("oldest")).where(part).order_by(oldest).limit(_LIMIT)
        if lock:
            one = one.with_for_update(skip_locked=True)
        picks.append(one.cte(f"part{index}").prefix_with("MATERIALIZED"))
    if len(picks) == 1:
        picked = picks[0]
    else:
        candidates = union_all(*(select(p.c.id, p.c.oldest) for p in picks)).subquery("candidates")
        picked = select(candidates.c.id).order_by(candidates.c.oldest).limit(_LIMIT).cte("picked")
        picked = picked.prefix_with("MATERIALIZED")
    batch = update(table).where(table_ids.in_(select(picked.c.id))).values(**values).returning(*columns)
    return _Claim(pick, take, read, batch)


def _run_claim(conn: Connection, claim: _Claim, params: dict[str, Any], order: str) -> list[Row[Any]]:
    """The claimed rows, oldest first (RETURNING gives them in no particular order)."""
    if claim.batch is not None:
        return sorted(conn.execute(claim.batch, params).all(), key=lambda row: getattr(row, order))
    won: list[Row[Any]] = []
    take = {k: v for k, v in params.items() if k != "b_limit"}
    for (row_id,) in conn.execute(claim.pick, params).all():
        if conn.execute(claim.take, {**take, "b_id": row_id}).rowcount:
            won.append(conn.execute(claim.read, {"b_id": row_id}).one())
    return won


class Journal:
    """One node's handle on the journal; ``clock`` is naive UTC, swappable so tests need not wait."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str = "node",
        lease: float = 300.0,
        clock: Callable[[], dt.datetime] = utcnow,
        spool_root: Path | None = None,
    ) -> None:
        self.url = url
        #: where adapters spool attachments; files listed by a message go when its body goes
        self.spool_root = spool_root
        self.engine: Engine = database.make_engine(url)
        self.node_id = node_id
        self.lease = dt.timedelta(seconds=lease)
        self.clock = clock
        dialect = self.engine.dialect
        self.skip_locked = dialect.name in database.SKIP_LOCKED_DIALECTS
        one = dialect.name in ONE_STATEMENT_CLAIM_DIALECTS and dialect.update_returning
        taken = {"claimed_by": bindparam("b_node"), "lease_until": _LEASE}
        wanted = deliveries.c.destination.in_(bindparam("b_dest", expanding=True))
        due = (
            and_(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= _NOW),
            and_(deliveries.c.status == "inflight", deliveries.c.lease_until < _NOW),
        )
        claimed = {**taken, "status": "inflight", "attempts": deliveries.c.attempts + 1, "updated_at": _NOW}
        self._claim_deliveries = {
            filtered: _claim(
                deliveries,
                [and_(part, wanted) for part in due] if filtered else due,
                deliveries.c.next_attempt_at,
                claimed,
                _DELIVERY_COLUMNS,
                lock=self.skip_locked,
                one_statement=one,
            )
            for filtered in (False, True)
        }
        unfinished = and_(
            messages.c.status == "received",
            messages.c.route_id.in_(bindparam("b_routes", expanding=True)),
            or_(messages.c.lease_until.is_(None), messages.c.lease_until < _NOW),
        )
        self._claim_messages = _claim(
            messages,
            [unfinished],
            messages.c.received_at,
            {**taken, "attempts": messages.c.attempts + 1},
            _MESSAGE_COLUMNS,
            lock=self.skip_locked,
            one_statement=one,
        )

    def upgrade(self) -> None:
        database.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- inbound -------------------------------------------------------------------

    def accept(
        self, exchange: Exchange, *, route_id: str, source: str, store_mode: str, claim: bool, key: str | None = None
    ) -> str:
        """Commit an inbound message; only then may the caller be answered.

        ``key`` names a message a consumer may see twice (:mod:`esb.journal.inbound`):
        DuplicateMessageError when the route holds it already.
        """
        now = self.clock()
        parent = exchange.message_id
        if parent is not None:
            exchange.properties.setdefault("parent_message_id", parent)
        message_id = _id()
        row = {
            "id": message_id,
            "route_id": route_id,
            "status": "received",
            "received_at": now,
            "updated_at": now,
            "correlation_id": exchange.correlation_id,
            "source": source[:1000],
            "headers": dict(exchange.headers),
            "body": exchange.body,
            "body_size": len(exchange.body),
            "store_mode": store_mode,
            "replay_of": exchange.properties.get("replay_of"),
            "attempts": 1 if claim else 0,
            "claimed_by": self.node_id if claim else None,
            "lease_until": now + self.lease if claim else None,
        }
        if key is None:
            with self.engine.begin() as conn:
                conn.execute(_INSERT_MESSAGE, row)
        else:
            self._accept_keyed(row, route_id, key, now)
        exchange.message_id = message_id
        return message_id

    def _accept_keyed(self, row: dict[str, Any], route_id: str, key: str, now: dt.datetime) -> None:
        for attempt in (1, 2):  # a second node inserting the same new key at once: the retry finds its row
            try:
                with self.engine.begin() as conn:
                    held = take_key(conn, route_id, key, row["id"], now)
                    if held is not None:
                        raise DuplicateMessageError(held)
                    conn.execute(_INSERT_MESSAGE, row)
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    def complete(
        self,
        message_id: str,
        *,
        status: str,
        new_deliveries: Sequence[NewDelivery] = (),
        error: str | None = None,
        route_id: str | None = None,
        store_mode: str | None = None,
    ) -> None:
        """Finish a message and queue its deliveries in one transaction.

        Only a message still ``received`` is finished: when a slow node's lease ran
        out and another node re-ran and finished the message first, the late
        finisher's deliveries would otherwise be queued a second time.
        ``route_id`` and ``store_mode`` are the message's own (the caller that
        accepted it knows them); when either is not given they are read back.
        """
        now = self.clock()
        with self.engine.begin() as conn:
            read_back = route_id is None or store_mode is None
            if read_back:
                row = conn.execute(_MESSAGE_ROUTE, {"b_id": message_id}).first()
                if row is None:
                    raise NotFoundError(f"message {message_id} is not in the journal")
                route_id, store_mode = row.route_id, row.store_mode
            assert route_id is not None
            values: dict[str, Any] = {
                "b_id": message_id,
                "status": status,
                "updated_at": now,
                "error": error,
                "claimed_by": None,
                "lease_until": None,
            }
            spooled: list[dict[str, str]] = []
            if store_mode == "metadata":
                values["body"] = None
                # a queued delivery may still send the spooled parts (to: dicom://...): prune takes them later
                if self.spool_root is not None and not new_deliveries:
                    headers = conn.execute(select(messages.c.headers).where(messages.c.id == message_id)).scalar()
                    spooled = [headers] if headers is not None and lists_attachments(headers) else []
            if not conn.execute(_FINISH_MESSAGE, values).rowcount:
                if not read_back and conn.execute(_MESSAGE_ROUTE, {"b_id": message_id}).first() is None:
                    raise NotFoundError(f"message {message_id} is not in the journal")
                log.info("message %s was already finished (by another node); its result is dropped", message_id)
                return
            self._queue(conn, message_id, route_id, new_deliveries, now)
        discard_attachments(spooled, self.spool_root)

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
            _INSERT_DELIVERIES,
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

    def _claim_params(self, limit: int) -> dict[str, Any]:
        now = self.clock()
        return {"b_now": now, "b_lease": now + self.lease, "b_node": self.node_id, "b_limit": limit}

    def claim_messages(self, limit: int, route_ids: Sequence[str]) -> list[ClaimedMessage]:
        """Messages whose route never completed (crash, replay, other node died)."""
        params = {**self._claim_params(limit), "b_routes": list(route_ids)}
        with self.engine.begin() as conn:
            rows = _run_claim(conn, self._claim_messages, params, "received_at")
        return [
            ClaimedMessage(row.id, row.route_id, dict(row.headers), row.body or b"", row.correlation_id, row.attempts)
            for row in rows
        ]

    # -- outbound ------------------------------------------------------------------

    def claim_deliveries(self, limit: int, destinations: Sequence[str] | None = None) -> list[ClaimedDelivery]:
        params = self._claim_params(limit)
        if destinations is not None:
            params["b_dest"] = list(destinations)
        with self.engine.begin() as conn:
            rows = _run_claim(conn, self._claim_deliveries[destinations is not None], params, "next_attempt_at")
        return [
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
            for row in rows
        ]

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
            "b_id": delivery.id,
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
        attempt = {
            "delivery_id": delivery.id,
            "attempt": delivery.attempts,
            "at": now,
            "node": self.node_id,
            "outcome": "ok" if error is None else "error",
            "error": error,
            "duration_ms": duration_ms,
        }
        with self.engine.begin() as conn:
            conn.execute(_INSERT_ATTEMPT, attempt)
            fence = {"b_node": self.node_id, "b_attempt": delivery.attempts}
            if conn.execute(_RECORD_OURS, {**values, **fence}).rowcount:
                return status
            if status == "delivered" and conn.execute(_RECORD_LATE, values).rowcount:
                return status
            current = conn.execute(_DELIVERY_STATUS, {"b_id": delivery.id}).scalar()
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
        """Remove finished messages, a batch at a time (see :func:`esb.journal.prune.prune_finished`)."""
        return prune_finished(
            self.engine, self.clock(), self.spool_root, older_than, route_id=route_id, exclude_routes=exclude_routes
        )
