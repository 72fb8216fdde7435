"""Reading and writing audit records (``esb_audit_records``): append, claim, search, report.

Synchronous SQLAlchemy like the journal: the writer thread appends, the
sender claims in a worker thread, the CLI reads. Claims lock the picked rows
with ``FOR UPDATE SKIP LOCKED`` where the dialect has it, so several nodes
on one database send disjoint batches; on SQLite the conditional update
alone decides (one writer at a time).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from esb.audit import codes
from esb.audit.model import AuditEvent, AuditSource
from esb.audit.schema import patients, records
from esb.audit.xml import render
from esb.journal.database import SKIP_LOCKED_DIALECTS
from esb.journal.store import naive_utc, utcnow

log = logging.getLogger("esb.audit")


def row_of(event: AuditEvent, source: AuditSource) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The record row and its patient rows (the XML is rendered here, in the writer thread)."""
    row = {
        "id": event.record_id,
        "created_at": naive_utc(event.at),
        "event_id": event.event_id.code[:16],
        "event_type": event.transaction[:64],
        "action": event.action,
        "outcome": int(event.outcome),
        "user_id": event.user[:256],
        "source_node": (event.source or source).source_id[:200],
        "xml": render(event, source),
        "sent_at": None,
        "attempts": 0,
        "last_error": None,
        "claimed_by": None,
        "lease_until": None,
    }
    named = list({p[:256]: None for p in event.patient_ids})
    return row, [{"record_id": event.record_id, "patient_id": p} for p in named]


@dataclass(frozen=True)
class Claimed:
    id: str
    created_at: dt.datetime
    xml: str
    attempts: int


@dataclass(frozen=True)
class Search:
    """``esb audit search`` filters; None: any."""

    patient: str | None = None
    user: str | None = None
    #: an EventID code (110110), its name (patient-record) or an event type (ITI-8)
    event: str | None = None
    outcome: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100


class AuditStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.skip_locked = engine.dialect.name in SKIP_LOCKED_DIALECTS

    # -- writing -----------------------------------------------------------------

    def append(self, events: Sequence[AuditEvent], source: AuditSource) -> None:
        """Store a batch in one transaction; raise only what retrying can cure (the database is away).

        One event must not hold back the others forever: an event that cannot be
        rendered is dropped with an ERROR (a bug, counted by the caller's log),
        and when the batch breaks a constraint (an event emitted twice) each
        event is stored on its own, the ones already there skipped.
        """
        rows: dict[str, dict[str, Any]] = {}
        named: list[dict[str, Any]] = []
        for event in events:
            try:
                row, names = row_of(event, source)
            except Exception as exc:
                log.error("audit event %s cannot be written as XML, dropped: %s", event.event_id.code,
                          type(exc).__name__)  # fmt: skip
                continue
            if row["id"] not in rows:
                rows[row["id"]] = row
                named.extend(names)
        if not rows:
            return
        try:
            self._insert(list(rows.values()), named)
        except IntegrityError:
            for row in rows.values():
                try:
                    self._insert([row], [n for n in named if n["record_id"] == row["id"]])
                except IntegrityError:
                    log.warning("audit record %s was stored already; not stored twice", row["id"])

    def _insert(self, rows: list[dict[str, Any]], named: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(records), rows)
            if named:
                conn.execute(insert(patients), named)

    # -- the sender ------------------------------------------------------------------

    def claim(self, node: str, limit: int, lease: float) -> list[Claimed]:
        """Unsent records nobody holds (or whose holder's lease or backoff ran out), oldest first."""
        now = utcnow()
        free = and_(records.c.sent_at.is_(None), or_(records.c.lease_until.is_(None), records.c.lease_until < now))
        pick = select(records.c.id).where(free).order_by(records.c.created_at, records.c.id).limit(limit)
        if self.skip_locked:
            pick = pick.with_for_update(skip_locked=True)
        until = now + dt.timedelta(seconds=lease)
        with self.engine.begin() as conn:
            ids = [row.id for row in conn.execute(pick)]
            if not ids:
                return []
            conn.execute(update(records).where(records.c.id.in_(ids), free).values(claimed_by=node, lease_until=until))
            taken = select(records.c.id, records.c.created_at, records.c.xml, records.c.attempts).where(
                records.c.id.in_(ids), records.c.claimed_by == node, records.c.lease_until == until
            )
            rows = conn.execute(taken.order_by(records.c.created_at, records.c.id)).all()
        return [Claimed(r.id, r.created_at, r.xml, r.attempts) for r in rows]

    def mark_sent(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        values = {
            "sent_at": utcnow(), "attempts": records.c.attempts + 1, "claimed_by": None, "lease_until": None,
            "last_error": None,
        }  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(update(records).where(records.c.id.in_(ids)).values(**values))

    def mark_failed(self, ids: Sequence[str], error: str, retry_in: float) -> None:
        """Count the attempt and hold the rows back for ``retry_in`` seconds (every node's backoff)."""
        if not ids:
            return
        values = {
            "attempts": records.c.attempts + 1, "last_error": error[:2000], "claimed_by": None,
            "lease_until": utcnow() + dt.timedelta(seconds=retry_in),
        }  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(update(records).where(records.c.id.in_(ids), records.c.sent_at.is_(None)).values(**values))

    def release(self, ids: Sequence[str]) -> None:
        """Give claimed rows back untried (the engine is stopping)."""
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(records)
                .where(records.c.id.in_(ids), records.c.sent_at.is_(None))
                .values(claimed_by=None, lease_until=None)
            )

    def prune(self, older_than: dt.datetime, batch: int = 1000) -> int:
        """Delete sent records created before ``older_than``; unsent ones stay whatever their age."""
        with self.engine.begin() as conn:
            ids = [
                r.id
                for r in conn.execute(
                    select(records.c.id)
                    .where(records.c.sent_at.is_not(None), records.c.created_at < older_than)
                    .limit(batch)
                )
            ]
            if ids:
                conn.execute(delete(patients).where(patients.c.record_id.in_(ids)))
                conn.execute(delete(records).where(records.c.id.in_(ids)))
        return len(ids)

    # -- reading ---------------------------------------------------------------------

    def search(self, query: Search) -> tuple[list[Row[Any]], dict[str, list[str]]]:
        """Matching records, newest first, and the patients each names (record id -> CX identifiers)."""
        stmt = select(records).order_by(records.c.created_at.desc(), records.c.id.desc()).limit(query.limit)
        if query.patient:
            named = select(patients.c.record_id).where(patients.c.patient_id == query.patient)
            stmt = stmt.where(records.c.id.in_(named))
        if query.user:
            stmt = stmt.where(records.c.user_id == query.user)
        if query.event:
            stmt = stmt.where(event_filter(query.event))
        if query.outcome is not None:
            stmt = stmt.where(records.c.outcome == query.outcome)
        if query.since:
            stmt = stmt.where(records.c.created_at >= naive_utc(query.since))
        if query.until:
            stmt = stmt.where(records.c.created_at < naive_utc(query.until))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            ids = [r.id for r in rows]
            named_rows = conn.execute(
                select(patients.c.record_id, patients.c.patient_id).where(patients.c.record_id.in_(ids))
            ).all() if ids else []  # fmt: skip
        return list(rows), _patients_by_record(named_rows)

    def report(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> dict[str, Any]:
        """Counts by event, outcome, user and node over a period (B5.13's analysis of the security log)."""
        window = []
        if since:
            window.append(records.c.created_at >= naive_utc(since))
        if until:
            window.append(records.c.created_at < naive_utc(until))
        out: dict[str, Any] = {}
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(records).where(*window)).scalar_one()
            out["total"] = int(total)
            for name, columns in (
                ("by_event", (records.c.event_id, records.c.event_type)),
                ("by_outcome", (records.c.outcome,)),
                ("by_user", (records.c.user_id,)),
                ("by_node", (records.c.source_node,)),
            ):
                stmt = select(*columns, func.count().label("n")).where(*window).group_by(*columns)
                out[name] = [(*row[:-1], int(row[-1])) for row in conn.execute(stmt.order_by(func.count().desc()))]
        return out

    def status(self) -> dict[str, Any]:
        """What the sender owes the ARR: unsent count, the oldest unsent, the last error, the last send."""
        unsent = records.c.sent_at.is_(None)
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(records.c.created_at)).select_from(records).where(unsent)
            ).one()
            error = conn.execute(
                select(records.c.last_error, records.c.attempts)
                .where(unsent, records.c.last_error.is_not(None))
                .order_by(records.c.attempts.desc(), records.c.created_at)
                .limit(1)
            ).first()
            last_sent = conn.execute(select(func.max(records.c.sent_at))).scalar_one()
            total = conn.execute(select(func.count()).select_from(records)).scalar_one()
        return {
            "records": int(total), "unsent": int(count), "oldest_unsent": oldest,
            "last_error": error.last_error if error else None, "attempts": error.attempts if error else 0,
            "last_sent": last_sent,
        }  # fmt: skip


def event_filter(text: str) -> Any:
    """``110110``, ``patient-record`` (a name of CID 400) or ``ITI-8`` (an event type)."""
    wanted = text.strip()
    code = codes.EVENT_NAMES.get(wanted.lower().replace(" ", "-"), wanted)
    return or_(records.c.event_id == code, records.c.event_type == wanted)


def _patients_by_record(rows: Iterable[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row.record_id, []).append(row.patient_id)
    return out
