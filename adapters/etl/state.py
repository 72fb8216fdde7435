"""A job's checkpoint, lease, runs and rejected rows, kept in the engine's database.

The lease is taken with a conditional UPDATE of the checkpoint row (free, ours,
or expired), which every database does atomically, so no locking dialect is
needed. Each batch is committed in one transaction: the checkpoint (only while
we still own the row: a node that lost its lease writes nothing), the batch's
rejects, the resolution of earlier rejects that now loaded, and the run's
counters. Timestamps are naive UTC like the journal's.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from adapters.etl import schema as t
from adapters.etl.source import Position, decode
from esb.errors import AdapterError
from esb.journal import utcnow

#: longest reason kept for a rejected row
REASON_MAX = 2000


class LeaseLostError(AdapterError):
    """Another node took the job over (our lease ran out): this node writes nothing more for it."""


@dataclass
class Counts:
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    skipped: int = 0

    def add(self, other: Counts) -> None:
        self.read += other.read
        self.loaded += other.loaded
        self.rejected += other.rejected
        self.skipped += other.skipped


@dataclass(frozen=True)
class Reject:
    key: str
    watermark: str
    reason: str
    row: str
    message_id: str | None


@dataclass
class BatchResult:
    """What one batch did, committed at once by :meth:`JobState.commit`."""

    counts: Counts = field(default_factory=Counts)
    rejects: list[Reject] = field(default_factory=list)
    #: keys that loaded (or were already loaded): their open rejects are resolved
    loaded_keys: list[str] = field(default_factory=list)
    #: keys asked for retry that are no longer in the view
    gone_keys: list[str] = field(default_factory=list)


class JobState:
    def __init__(
        self, engine: Engine, route_id: str, owner: str, lease: float, clock: Callable[[], dt.datetime] = utcnow
    ) -> None:
        self.engine = engine
        self.route_id = route_id
        self.owner = owner
        self.lease = dt.timedelta(seconds=lease)
        self.clock = clock

    # -- lease ------------------------------------------------------------------------

    def acquire(self) -> tuple[bool, int]:
        """Take the job (free, already ours, or its holder's lease ran out).

        Returns (taken, runs left ``running`` by a dead holder, now marked interrupted).
        """
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.checkpoints).values(route_id=self.route_id, updated_at=now))
        except IntegrityError:
            pass  # the row is there (the usual case), or another node created it at the same moment
        c = t.checkpoints.c
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(t.checkpoints)
                .where(c.route_id == self.route_id)
                .where(or_(c.owner.is_(None), c.owner == self.owner, c.lease_until < now))
                .values(owner=self.owner, lease_until=now + self.lease)
            ).rowcount
            if taken != 1:
                return False, 0
            left = conn.execute(
                update(t.runs)
                .where(t.runs.c.route_id == self.route_id, t.runs.c.status == t.RUNNING)
                .values(status=t.INTERRUPTED, finished_at=now, error="its node stopped or died during the run")
            ).rowcount
        return True, int(left)

    def renew(self) -> bool:
        """Push the lease on; False when another node has taken the job meanwhile."""
        now = self.clock()
        c = t.checkpoints.c
        with self.engine.begin() as conn:
            renewed = conn.execute(
                update(t.checkpoints)
                .where(c.route_id == self.route_id, c.owner == self.owner)
                .values(lease_until=now + self.lease)
            ).rowcount
        return renewed == 1

    def release(self) -> None:
        c = t.checkpoints.c
        with self.engine.begin() as conn:
            conn.execute(
                update(t.checkpoints)
                .where(c.route_id == self.route_id, c.owner == self.owner)
                .values(owner=None, lease_until=None)
            )

    def holder(self) -> tuple[str | None, dt.datetime | None]:
        c = t.checkpoints.c
        with self.engine.connect() as conn:
            row = conn.execute(select(c.owner, c.lease_until).where(c.route_id == self.route_id)).first()
        return (row.owner, row.lease_until) if row is not None else (None, None)

    # -- checkpoint -------------------------------------------------------------------

    def position(self) -> Position | None:
        c = t.checkpoints.c
        with self.engine.connect() as conn:
            row = conn.execute(select(t.checkpoints).where(c.route_id == self.route_id)).first()
        if row is None or row.watermark is None or row.last_key is None:
            return None
        return Position(decode(row.watermark, row.watermark_type), decode(row.last_key, row.key_type))

    def reset(self) -> None:
        """Forget the checkpoint (the next read starts at ``since``); only while we hold the job."""
        with self.engine.begin() as conn:
            self._own(conn, watermark=None, watermark_type=None, last_key=None, key_type=None)

    def _own(self, conn: Connection, **values: Any) -> None:
        """Write the checkpoint row (and push the lease on) only while we own it."""
        c = t.checkpoints.c
        now = self.clock()
        done = conn.execute(
            update(t.checkpoints)
            .where(c.route_id == self.route_id, c.owner == self.owner)
            .values(updated_at=now, lease_until=now + self.lease, **values)
        ).rowcount
        if done != 1:
            raise LeaseLostError(f"route '{self.route_id}': another node took the ETL job over (lease ran out)")

    # -- runs -------------------------------------------------------------------------

    def start_run(self, mode: str) -> str:
        run_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.runs).values(
                    id=run_id,
                    route_id=self.route_id,
                    mode=mode,
                    owner=self.owner,
                    started_at=self.clock(),
                    rows_read=0,
                    rows_loaded=0,
                    rows_rejected=0,
                    rows_skipped=0,
                    status=t.RUNNING,
                )  # fmt: skip
            )
        return run_id

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(status=status, finished_at=self.clock(), error=error[:REASON_MAX] if error else None)
            )

    # -- a batch, in one transaction --------------------------------------------------

    def commit(self, run_id: str, result: BatchResult, position: Position | None) -> None:
        """Checkpoint (when ``position``), rejects, resolutions and counters, all or nothing."""
        now = self.clock()
        with self.engine.begin() as conn:
            if position is not None:
                watermark, watermark_type, last_key, key_type = position.encoded()
                self._own(conn, watermark=watermark, watermark_type=watermark_type, last_key=last_key,
                          key_type=key_type)  # fmt: skip
            else:
                self._own(conn)
            for reject in result.rejects:
                self._reject(conn, reject, now)
            self._resolve(conn, result.loaded_keys, "loaded", now)
            self._resolve(conn, result.gone_keys, "gone", now)
            counts, r = result.counts, t.runs.c
            conn.execute(
                update(t.runs)
                .where(r.id == run_id)
                .values(
                    rows_read=r.rows_read + counts.read,
                    rows_loaded=r.rows_loaded + counts.loaded,
                    rows_rejected=r.rows_rejected + counts.rejected,
                    rows_skipped=r.rows_skipped + counts.skipped,
                )  # fmt: skip
            )

    def _reject(self, conn: Connection, reject: Reject, now: dt.datetime) -> None:
        c = t.rejects.c
        values = {
            "watermark": reject.watermark,
            "reason": reject.reason[:REASON_MAX],
            "row_json": reject.row,
            "message_id": reject.message_id,
            "last_at": now,
            "status": t.OPEN,
            "resolution": None,
        }
        updated = conn.execute(
            update(t.rejects)
            .where(c.route_id == self.route_id, c.row_key == reject.key)
            .values(attempts=c.attempts + 1, **values)
        ).rowcount
        if not updated:
            conn.execute(
                insert(t.rejects).values(route_id=self.route_id, row_key=reject.key, attempts=1, first_at=now, **values)
            )

    def _resolve(self, conn: Connection, keys: Sequence[str], resolution: str, now: dt.datetime) -> None:
        c = t.rejects.c
        for start in range(0, len(keys), 500):
            conn.execute(
                update(t.rejects)
                .where(c.route_id == self.route_id, c.row_key.in_(keys[start : start + 500]), c.status != t.RESOLVED)
                .values(status=t.RESOLVED, resolution=resolution, last_at=now)
            )

    # -- rejects asked for retry --------------------------------------------------------

    def retry_keys(self, limit: int) -> list[str]:
        c = t.rejects.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.row_key)
                .where(c.route_id == self.route_id, c.status == t.RETRY_ASKED)
                .order_by(c.first_at, c.row_key)
                .limit(limit)
            )
            return [row.row_key for row in rows]

    def count_retry(self) -> int:
        c = t.rejects.c
        with self.engine.connect() as conn:
            query = select(func.count()).where(c.route_id == self.route_id, c.status == t.RETRY_ASKED)
            return int(conn.execute(query).scalar_one())


# -- for the CLI: read and mark, no lease needed --------------------------------------


def ask_retry(engine: Engine, route_id: str, key: str | None) -> int:
    """Mark open rejects (one key, or all) for the job to re-run; returns how many."""
    c = t.rejects.c
    where = [c.route_id == route_id, c.status == t.OPEN]
    if key is not None:
        where.append(c.row_key == key)
    with engine.begin() as conn:
        return int(conn.execute(update(t.rejects).where(*where).values(status=t.RETRY_ASKED)).rowcount)


def open_rejects(engine: Engine, route_id: str, limit: int | None = None) -> list[dict[str, Any]]:
    c = t.rejects.c
    query = (
        select(t.rejects)
        .where(c.route_id == route_id, c.status != t.RESOLVED)
        .order_by(c.first_at, c.row_key)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def job_status(engine: Engine, route_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per job: checkpoint, holder, last run and its counts, rejects not resolved."""
    r, rj = t.runs.c, t.rejects.c
    with engine.connect() as conn:
        checkpoints = {row.route_id: row for row in conn.execute(select(t.checkpoints))}
        latest = select(r.route_id, func.max(r.started_at).label("started_at")).group_by(r.route_id).subquery("latest")
        last_runs = {
            row.route_id: row
            for row in conn.execute(
                select(t.runs).join(latest, and_(r.route_id == latest.c.route_id, r.started_at == latest.c.started_at))
            )
        }
        open_counts: dict[str, int] = {
            row.route_id: int(row.open)
            for row in conn.execute(
                select(rj.route_id, func.count().label("open")).where(rj.status != t.RESOLVED).group_by(rj.route_id)
            )
        }
    names = sorted(set(route_ids) if route_ids is not None else {*checkpoints, *last_runs, *open_counts})
    out: list[dict[str, Any]] = []
    for name in names:
        point, run = checkpoints.get(name), last_runs.get(name)
        out.append(
            {
                "route": name,
                "watermark": point.watermark if point is not None else None,
                "last_key": point.last_key if point is not None else None,
                "held_by": point.owner if point is not None else None,
                "lease_until": point.lease_until if point is not None else None,
                "last_run": run.mode if run is not None else None,
                "run_status": run.status if run is not None else None,
                "started": run.started_at if run is not None else None,
                "finished": run.finished_at if run is not None else None,
                "read": run.rows_read if run is not None else None,
                "loaded": run.rows_loaded if run is not None else None,
                "rejected": run.rows_rejected if run is not None else None,
                "skipped": run.rows_skipped if run is not None else None,
                "open_rejects": int(open_counts.get(name, 0)),
            }
        )
    return out
