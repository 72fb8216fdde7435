"""The collection jobs' rows: which job a run continues, each study's outcome, the job's figures.

Every write is its own short transaction, made after a study is finished, so
a run stopped at any point leaves rows that say exactly what was done; the
job's counters are recomputed from its items in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from esb.errors import DicomError
from profiles.dicom import collect_schema as t

#: a running job that made no progress for this long is taken to be dead and may be resumed
BUSY_AFTER = 600.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class CollectReport:
    """A job's figures over all its runs (a resumed job counts what earlier runs did too)."""

    job_id: str
    source: str
    method: str
    since: str
    until: str
    status: str
    resumed: bool
    runs: int
    found: int
    retrieved: int
    skipped: int
    failed: int
    instances: int
    bytes: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StudyOutcome:
    """What became of one study in one run (the figures are what this run added)."""

    status: str
    instances: int = 0
    bytes: int = 0
    error: str | None = None


def report_of(row: Any, resumed: bool = False) -> CollectReport:
    """A job row as a report (also what ``esb dicom jobs`` shows)."""
    return CollectReport(
        job_id=row.id, source=row.source, method=row.method, since=row.since, until=row.until, status=row.status,
        resumed=resumed, runs=row.runs, found=row.studies_found, retrieved=row.studies_retrieved,
        skipped=row.studies_skipped, failed=row.studies_failed, instances=row.instances, bytes=int(row.bytes),
        seconds=round(float(row.seconds), 3),
    )  # fmt: skip


class JobRows:
    """The rows of the jobs of one source and method."""

    def __init__(self, engine: Engine, source: str, method: str) -> None:
        self.engine = engine
        self.source = source
        self.method = method

    def open(self, window: tuple[str, str]) -> tuple[str, bool]:
        """The unfinished job for the same source, method and window, or a new one.

        A job another process is running (progress within ``BUSY_AFTER``) is
        not taken over: two runs would fetch the same studies. One whose process
        died shows no progress and is resumed once that time has passed.
        """
        now = _now()
        with self.engine.begin() as conn:
            found = conn.execute(
                select(t.jobs.c.id, t.jobs.c.status, t.jobs.c.updated_at)
                .where(t.jobs.c.source == self.source, t.jobs.c.method == self.method)
                .where(t.jobs.c.since == window[0], t.jobs.c.until == window[1])
                .where(t.jobs.c.status.in_(t.RESUMABLE))
                .order_by(t.jobs.c.created_at.desc())
                .limit(1)
            ).first()
            if found is not None:
                idle = (now - found.updated_at).total_seconds()
                if found.status == t.RUNNING and idle < BUSY_AFTER:
                    raise DicomError(f"collection job {found.id} is running (last progress {idle:.0f}s ago); "
                                     f"it can be resumed once idle for {BUSY_AFTER:.0f}s", status=0xA700)  # fmt: skip
                resumed = conn.execute(
                    update(t.jobs)
                    .where(t.jobs.c.id == found.id, t.jobs.c.status == found.status)
                    .where(t.jobs.c.updated_at == found.updated_at)
                    .values(status=t.RUNNING, runs=t.jobs.c.runs + 1, updated_at=now, finished_at=None)
                ).rowcount
                if resumed != 1:
                    raise DicomError(f"collection job {found.id} was just taken by another run", status=0xA700)
                return str(found.id), True
            job_id = uuid.uuid4().hex
            conn.execute(
                insert(t.jobs).values(
                    id=job_id,
                    source=self.source,
                    method=self.method,
                    since=window[0],
                    until=window[1],
                    status=t.RUNNING,
                    created_at=now,
                    updated_at=now,
                    runs=1,
                    studies_found=0,
                    studies_retrieved=0,
                    studies_skipped=0,
                    studies_failed=0,
                    instances=0,
                    bytes=0,
                    seconds=0.0,
                )  # fmt: skip
            )
        return job_id, False

    def add_studies(self, job_id: str, studies: dict[str, tuple[str, int]]) -> None:
        now = _now()
        with self.engine.begin() as conn:
            known = {
                str(r.study_uid): (str(r.status), int(r.remote_instances))
                for r in conn.execute(
                    select(t.items.c.study_uid, t.items.c.status, t.items.c.remote_instances).where(
                        t.items.c.job_id == job_id
                    )
                )
            }
            for uid, (_, count) in studies.items():
                if uid in known and known[uid][0] in (t.PENDING, t.FAILED) and known[uid][1] != count:
                    conn.execute(  # the study grew (or shrank) at the remote since the last run
                        update(t.items)
                        .where(t.items.c.job_id == job_id, t.items.c.study_uid == uid)
                        .values(remote_instances=count, updated_at=now)
                    )
            rows = [
                {"job_id": job_id, "study_uid": uid, "study_date": date, "status": t.PENDING, "remote_instances": count,
                 "instances": 0, "bytes": 0, "attempts": 0, "error": None, "updated_at": now}
                for uid, (date, count) in studies.items() if uid not in known
            ]  # fmt: skip
            if rows:
                conn.execute(insert(t.items), rows)
            self._totals(conn, job_id)

    def todo(self, job_id: str) -> list[tuple[str, int]]:
        """(study UID, NumberOfStudyRelatedInstances) of the studies not done yet, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.items.c.study_uid, t.items.c.remote_instances)
                .where(t.items.c.job_id == job_id, t.items.c.status.in_((t.PENDING, t.FAILED)))
                .order_by(t.items.c.study_date, t.items.c.study_uid)
            ).all()
        return [(str(r.study_uid), int(r.remote_instances)) for r in rows]

    def record(self, job_id: str, study_uid: str, outcome: StudyOutcome) -> None:
        item = t.items.c
        with self.engine.begin() as conn:
            conn.execute(
                update(t.items)
                .where(item.job_id == job_id, item.study_uid == study_uid)
                .values(status=outcome.status, instances=item.instances + outcome.instances,
                        bytes=item.bytes + outcome.bytes, attempts=item.attempts + 1, error=outcome.error,
                        updated_at=_now())
            )  # fmt: skip
            self._totals(conn, job_id)

    def _totals(self, conn: Connection, job_id: str) -> None:
        """The job's counters from its items, in the caller's transaction."""
        rows = conn.execute(
            select(t.items.c.status, func.count(), func.sum(t.items.c.instances), func.sum(t.items.c.bytes))
            .where(t.items.c.job_id == job_id)
            .group_by(t.items.c.status)
        ).all()
        counts = {str(r[0]): int(r[1]) for r in rows}
        conn.execute(
            update(t.jobs)
            .where(t.jobs.c.id == job_id)
            .values(
                studies_found=sum(counts.values()),
                studies_retrieved=counts.get(t.RETRIEVED, 0),
                studies_skipped=counts.get(t.SKIPPED, 0),
                studies_failed=counts.get(t.FAILED, 0),
                instances=sum(int(r[2] or 0) for r in rows),
                bytes=sum(int(r[3] or 0) for r in rows),
                updated_at=_now(),
            )  # fmt: skip
        )

    def close(self, job_id: str, status: str, seconds: float) -> None:
        with self.engine.begin() as conn:
            failed = conn.execute(
                select(func.count()).where(t.items.c.job_id == job_id, t.items.c.status == t.FAILED)
            ).scalar_one()
            if status == t.DONE and failed:
                status = t.FAILED
            finished = _now() if status in (t.DONE, t.FAILED) else None
            conn.execute(
                update(t.jobs)
                .where(t.jobs.c.id == job_id)
                .values(status=status, seconds=t.jobs.c.seconds + seconds, finished_at=finished, updated_at=_now())
            )

    def report(self, job_id: str, resumed: bool) -> CollectReport:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).one()
        return report_of(row, resumed)
