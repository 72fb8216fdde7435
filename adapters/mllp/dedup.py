"""Duplicate control ids: a retransmitted message is ACKed again, never processed twice.

The first answer per (route, MSH-3, MSH-4, MSH-10) lives in ``esb_mllp_dedup``,
not in memory, so a sender that retransmits to another node, or after a
restart, gets the same answer. A row is claimed (inserted) before the message
is handed to the engine, so of two copies arriving at once on two nodes only
one is processed. Its ACK code is recorded after the ACK went out, in batches:
until then the row is *pending*, and a retransmission looks the message up in
the journal through the exchange's correlation id. That also covers a node
that died between journaling and recording: a journaled message counts as
taken; one never journaled is given to the next copy once PENDING_GRACE has
passed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from esb.journal import Journal
from esb.journal.schema import messages, mllp_dedup

log = logging.getLogger("esb.adapters.mllp")

#: a pending row with no journaled message behind it is given up after this long
PENDING_GRACE = 60.0
#: how long the recorder gathers answers before writing them in one transaction
RECORD_LINGER = 0.05


@dataclass(frozen=True)
class DedupKey:
    route_id: str
    sending_application: str
    sending_facility: str
    control_id: str

    @classmethod
    def of(cls, route_id: str, application: str, facility: str, control_id: str) -> DedupKey:
        return cls(route_id[:200], application[:250], facility[:250], control_id[:200])

    def where(self) -> list[ColumnElement[bool]]:
        t = mllp_dedup.c
        return [
            t.route_id == self.route_id,
            t.sending_application == self.sending_application,
            t.sending_facility == self.sending_facility,
            t.control_id == self.control_id,
        ]


@dataclass(frozen=True)
class Seen:
    """What is known about the first copy of a message."""

    ack_code: str | None
    error_code: str | None = None
    ack_text: str | None = None
    message_id: str | None = None
    #: the first copy's journal status while its ACK code is not recorded (None: not journaled)
    journal_status: str | None = None


@dataclass(frozen=True)
class Answer:
    key: DedupKey
    correlation_id: str
    ack_code: str
    message_id: str | None
    error_code: str | None = None
    ack_text: str | None = None


#: built once: SQLAlchemy re-derives a statement's cache key on every call of ``.values(...)``
_CLAIM = insert(mllp_dedup)


class DedupStore:
    """Synchronous, like the journal: the consumer calls it from worker threads."""

    def __init__(self, journal: Journal, window: float) -> None:
        self.journal = journal
        self.window = dt.timedelta(seconds=window)

    def claim(self, key: DedupKey, correlation_id: str) -> Seen | None:
        """None: the message is new (or its row expired) and is now ours; else the first copy's state."""
        engine = self.journal.engine
        for _ in range(3):  # a row can vanish or be taken over between our statements
            now = self.journal.clock()
            try:
                with engine.begin() as conn:
                    conn.execute(_CLAIM, {**vars(key), "correlation_id": correlation_id, "received_at": now})
                return None
            except IntegrityError:
                pass
            with engine.begin() as conn:
                row = conn.execute(select(mllp_dedup).where(*key.where())).first()
                if row is None:
                    continue
                journaled = None
                if row.ack_code is None:
                    journaled = conn.execute(
                        select(messages.c.id, messages.c.status).where(messages.c.correlation_id == row.correlation_id)
                    ).first()
                expired = row.received_at < now - self.window
                abandoned = row.ack_code is None and journaled is None
                abandoned = abandoned and row.received_at < now - dt.timedelta(seconds=PENDING_GRACE)
                if expired or abandoned:
                    taken = conn.execute(
                        update(mllp_dedup)
                        .where(*key.where(), mllp_dedup.c.correlation_id == row.correlation_id)
                        .values(
                            correlation_id=correlation_id,
                            received_at=now,
                            message_id=None,
                            ack_code=None,
                            error_code=None,
                            ack_text=None,
                        )
                    ).rowcount
                    if taken:
                        return None
                    continue
                return Seen(
                    ack_code=row.ack_code,
                    error_code=row.error_code,
                    ack_text=row.ack_text,
                    message_id=row.message_id or (journaled.id if journaled else None),
                    journal_status=journaled.status if journaled else None,
                )
        raise RuntimeError(f"MLLP dedup: could not settle control id row for route {key.route_id}")

    def peek(self, key: DedupKey) -> Seen | None:
        """The first copy's state as it is now (None: its row is gone)."""
        with self.journal.engine.connect() as conn:
            row = conn.execute(select(mllp_dedup).where(*key.where())).first()
            if row is None:
                return None
            journaled = None
            if row.ack_code is None:
                journaled = conn.execute(
                    select(messages.c.id, messages.c.status).where(messages.c.correlation_id == row.correlation_id)
                ).first()
        return Seen(
            ack_code=row.ack_code,
            error_code=row.error_code,
            ack_text=row.ack_text,
            message_id=row.message_id or (journaled.id if journaled else None),
            journal_status=journaled.status if journaled else None,
        )

    def record(self, answers: list[Answer]) -> None:
        """Store the first answers; a row taken over meanwhile (another correlation id) is left alone."""
        if not answers:
            return
        t = mllp_dedup.c
        statement = (
            update(mllp_dedup)
            .where(
                and_(
                    t.route_id == bindparam("k_route"),
                    t.sending_application == bindparam("k_app"),
                    t.sending_facility == bindparam("k_facility"),
                    t.control_id == bindparam("k_control"),
                    t.correlation_id == bindparam("k_correlation"),
                )
            )
            .values(
                ack_code=bindparam("v_code"),
                message_id=bindparam("v_message"),
                error_code=bindparam("v_error"),
                ack_text=bindparam("v_text"),
            )
        )
        rows = [
            {
                "k_route": a.key.route_id,
                "k_app": a.key.sending_application,
                "k_facility": a.key.sending_facility,
                "k_control": a.key.control_id,
                "k_correlation": a.correlation_id,
                "v_code": a.ack_code,
                "v_message": a.message_id,
                "v_error": a.error_code,
                "v_text": (a.ack_text or "")[:500] or None,
            }
            for a in answers
        ]
        with self.journal.engine.begin() as conn:
            conn.execute(statement, rows)

    def release(self, key: DedupKey, correlation_id: str) -> None:
        """Forget a claim whose message the journal did not take, so a retransmission is processed."""
        with self.journal.engine.begin() as conn:
            conn.execute(delete(mllp_dedup).where(*key.where(), mllp_dedup.c.correlation_id == correlation_id))

    def prune(self, route_id: str) -> int:
        """Drop a route's rows older than the window; returns how many went."""
        cutoff = self.journal.clock() - self.window
        t = mllp_dedup.c
        with self.journal.engine.begin() as conn:
            return int(conn.execute(delete(mllp_dedup).where(t.route_id == route_id, t.received_at < cutoff)).rowcount)


class Recorder:
    """Writes first answers in batches, off the ACK's path (a pending row is resolved through the journal meanwhile).

    Closing lets a batch in flight finish rather than cancel it: its worker
    thread would go on using a database connection the engine is disposing of.
    """

    def __init__(self, store: DedupStore) -> None:
        self.store = store
        self._items: list[Answer] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mllp-dedup-recorder")

    def add(self, answer: Answer) -> None:
        self._items.append(answer)
        self._wake.set()

    async def _run(self) -> None:
        while not self._closing or self._items:
            await self._wake.wait()
            if not self._closing:
                await asyncio.sleep(RECORD_LINGER)  # gather more: one transaction for many answers
            self._wake.clear()
            batch, self._items = self._items, []
            if not batch:
                continue
            try:
                await asyncio.to_thread(self.store.record, batch)
            except Exception as exc:
                # Not fatal: the rows stay pending and are resolved through the journal.
                log.error(
                    "could not record %d MLLP answers for duplicate detection: %s", len(batch), type(exc).__name__
                )

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
