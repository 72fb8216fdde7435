"""One ETL job: hand rows of a view to a route, batch by batch, and keep count.

Each row becomes an exchange whose dedup key is ``etl:VIEW:KEY:WATERMARK``, so a
row read again after a crash (the checkpoint had not moved yet) is answered
``duplicate`` by the journal instead of being loaded twice, while a row whose
earlier message failed may be taken again (that is how a retry works).

What a row's outcome means for the job (``wait=true``):

==========================  =======================================================
route processed             loaded
route filtered, duplicate   skipped (the route dropped it, or it was loaded before)
route failed                rejected: kept with the route's error, the batch goes on
not journaled               refused (engine stopping, database down): the batch
                            stops before this row, which is read again next time
==========================  =======================================================
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from adapters.etl import schema as t
from adapters.etl.options import EtlOptions
from adapters.etl.source import Source, encode, row_json
from adapters.etl.state import BatchResult, Counts, JobState, LeaseLostError, Reject
from esb.components import Handler, Outcome
from esb.errors import AdapterError, ConfigError
from esb.exchange import DEDUP_KEY, Exchange

log = logging.getLogger("esb.adapters.etl")

#: called with the number of rows just finished (progress bars)
Progress = Callable[[int], None]
Fate = Literal["loaded", "skipped", "rejected", "refused"]


@dataclass
class Handed:
    fate: Fate
    reason: str = ""
    message_id: str | None = None


@dataclass
class RunReport:
    """What one run did; ``reasons`` counts the rejects' reasons (shown to people, never logged)."""

    route_id: str
    mode: str
    run_id: str
    status: str = t.RUNNING
    counts: Counts = field(default_factory=Counts)
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.counts.read / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """Counts only, fit for INFO logs."""
        c = self.counts
        return (
            f"route {self.route_id}: {self.mode} run {self.status}: read {c.read}, loaded {c.loaded}, "
            f"rejected {c.rejected}, skipped {c.skipped} in {self.seconds:.1f}s ({self.rate:.0f} rows/s)"
        )


def describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}" if error is not None else "the route failed"


def loggable(error: BaseException) -> str:
    """An error fit for logs above DEBUG: a configuration or database error says what went wrong
    (names and the driver's first line: statements are logged without their values); anything
    else, which may quote a row, gives its type only."""
    if isinstance(error, ConfigError):
        return str(error)
    if isinstance(error, SQLAlchemyError):
        first = str(getattr(error, "orig", None) or error).strip().splitlines()
        return f"{type(error).__name__}: {first[0] if first else ''}"
    return type(error).__name__


def fate_of(outcome: Outcome) -> Handed:
    if outcome.status == "failed":
        if outcome.message_id is None:
            return Handed("refused", describe(outcome.error))
        return Handed("rejected", describe(outcome.error), outcome.message_id)
    if outcome.status in ("processed", "accepted"):
        return Handed("loaded", message_id=outcome.message_id)
    return Handed("skipped", message_id=outcome.message_id)  # filtered, duplicate


class EtlJob:
    def __init__(
        self,
        options: EtlOptions,
        handler: Handler,
        route_id: str,
        journal_engine: Engine,
        owner: str,
    ) -> None:
        self.options = options
        self.handler = handler
        self.route_id = route_id
        self.where = f"route '{route_id}': etl:{options.view}"
        self.source = Source(options, self.where)
        self.state = JobState(journal_engine, route_id, owner, options.lease)
        #: set to stop (engine stopping, Ctrl-C): the run ends after the batch in hand
        self.stopping = asyncio.Event()
        #: set when another node took the job over: the run ends, the node may take the job again later
        self.lost = asyncio.Event()
        self.held = False
        self._heartbeat: asyncio.Task[None] | None = None

    # -- the lease ------------------------------------------------------------------

    async def take(self) -> tuple[bool, int]:
        """Hold the job (with a heartbeat) if no live node does; see :meth:`JobState.acquire`."""
        taken, interrupted = await asyncio.to_thread(self.state.acquire)
        if taken and not self.held:
            await self._stop_beating()
            self.held = True
            self.lost.clear()
            self._heartbeat = asyncio.create_task(self._beat(), name=f"etl-lease-{self.route_id}")
        return taken, interrupted

    async def give_back(self) -> None:
        await self._stop_beating()
        if self.held:
            self.held = False
            await asyncio.to_thread(self.state.release)

    async def _stop_beating(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None

    def _let_go(self) -> None:
        """Another node holds the job now: stop this run, write nothing more, keep polling."""
        self.held = False
        self.lost.set()

    @property
    def halted(self) -> bool:
        return self.stopping.is_set() or self.lost.is_set()

    async def busy_error(self) -> AdapterError:
        owner, until = await asyncio.to_thread(self.state.holder)
        shown = until.isoformat(timespec="seconds") + "Z" if until else "?"
        return AdapterError(f"{self.where}: the job is running on '{owner}' (lease until {shown}); try again later")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.options.lease / 3)
            try:
                if not await asyncio.to_thread(self.state.renew):
                    log.error("%s: another node took the job over; this node stops running it", self.where)
                    self._let_go()
                    return
            except Exception as exc:  # the database may be back before the lease runs out
                log.warning("%s: cannot renew the job's lease: %s", self.where, loggable(exc))

    # -- runs -----------------------------------------------------------------------

    async def remaining(self, since: str | None = None) -> int:
        """Rows still to read plus rejects asked for retry (for a progress bar)."""
        position = await asyncio.to_thread(self.state.position)
        lower = await asyncio.to_thread(self._lower, since) if position is None else None
        ahead = await asyncio.to_thread(self.source.count, position, lower)
        return ahead + await asyncio.to_thread(self.state.count_retry)

    def _lower(self, since: str | None) -> Any:
        text = since if since is not None else self.options.since
        return self.source.bound(text, "since") if text else None

    async def run(
        self, *, progress: Progress | None = None, since: str | None = None, lazy: bool = False
    ) -> list[RunReport]:
        """Re-run rejects asked for retry, then read until the view is exhausted (or stopping).

        ``lazy`` (polling): a run is recorded only once a read finds rows.
        """
        reports: list[RunReport] = []
        if await asyncio.to_thread(self.state.count_retry):
            reports.append(await self._retry_pass(progress))
        if not self.halted and (not reports or reports[-1].status == t.DONE):
            report = await self._read_pass(progress, since, lazy)
            if report is not None:
                reports.append(report)
        return reports

    async def _read_pass(self, progress: Progress | None, since: str | None, lazy: bool) -> RunReport | None:
        position = await asyncio.to_thread(self.state.position)
        lower = await asyncio.to_thread(self._lower, since) if position is None else None  # may reflect the view
        mode = t.BACKFILL if position is None else t.INCREMENTAL
        report: RunReport | None = None if lazy else await self._start(mode)
        started = time.monotonic()
        exhausted = False
        try:
            while not self.halted:
                rows = await asyncio.to_thread(self.source.read, position, lower, self.options.batch)
                if not rows:
                    exhausted = True
                    break
                if report is None:
                    report = await self._start(mode)
                    started = time.monotonic()
                result, cut, refusal = await self._batch(rows, report, progress)
                if cut:
                    position = self.source.position(rows[cut - 1])
                    await asyncio.to_thread(self.state.commit, report.run_id, result, position)
                    report.counts.add(result.counts)
                if refusal is not None:
                    return await self._end(report, started, refusal)
                if len(rows) < self.options.batch:
                    exhausted = True
                    break
        except Exception as exc:
            if report is None:
                raise
            return await self._end(report, started, exc)
        if report is None:
            return None
        return await self._end(report, started, None, exhausted)

    async def _retry_pass(self, progress: Progress | None) -> RunReport:
        report = await self._start(t.RETRY)
        started = time.monotonic()
        try:
            while not self.halted:
                keys = await asyncio.to_thread(self.state.retry_keys, self.options.batch)
                if not keys:
                    return await self._end(report, started, None, exhausted=True)
                values = await asyncio.to_thread(self._key_values, keys)
                rows = await asyncio.to_thread(self.source.by_keys, values)
                found = {encode(row[self.options.key])[0] for row in rows}
                result, cut, refusal = await self._batch(rows, report, progress)
                result.gone_keys = [k for k in keys if k not in found]
                if progress is not None and result.gone_keys:
                    progress(len(result.gone_keys))
                await asyncio.to_thread(self.state.commit, report.run_id, result, None)
                report.counts.add(result.counts)
                if refusal is not None:
                    return await self._end(report, started, refusal)
        except Exception as exc:
            return await self._end(report, started, exc)
        return await self._end(report, started, None)

    def _key_values(self, keys: list[str]) -> list[Any]:
        """Rejects keep keys as text; the view is queried with the key column's own type."""
        return [self.source.key_value(k) for k in keys]

    async def _start(self, mode: str) -> RunReport:
        run_id = await asyncio.to_thread(self.state.start_run, mode)
        return RunReport(self.route_id, mode, run_id)

    async def _end(
        self, report: RunReport, started: float, error: BaseException | str | None, exhausted: bool = False
    ) -> RunReport:
        """Record how the run ended: done (it read to the end), interrupted (stopping) or failed."""
        report.seconds = time.monotonic() - started
        if error is None:
            report.status = t.DONE if exhausted else t.INTERRUPTED
        else:
            report.status = t.INTERRUPTED if self.stopping.is_set() else t.FAILED
            report.error = error if isinstance(error, str) else describe(error)
        try:
            await asyncio.to_thread(self.state.finish_run, report.run_id, report.status, report.error)
        except Exception as exc:
            log.error("%s: cannot record the end of run %s: %s", self.where, report.run_id, loggable(exc))
        shown = loggable(error) if isinstance(error, BaseException) else (report.error or "").split(":")[0]
        line = report.summary() + (f": {shown}" if report.error else "")
        log.log(logging.INFO if report.status == t.DONE else logging.WARNING, "%s", line)
        if isinstance(error, LeaseLostError):
            self._let_go()
        return report

    # -- one batch ------------------------------------------------------------------

    async def _batch(
        self, rows: Sequence[dict[str, Any]], report: RunReport, progress: Progress | None
    ) -> tuple[BatchResult, int, str | None]:
        """Hand the rows over; returns what to commit, how many rows count (the rest is read
        again), and why the batch stopped early (None: it did not)."""
        gate = asyncio.Semaphore(self.options.parallel)
        refused = asyncio.Event()

        async def one(row: dict[str, Any]) -> Handed:
            async with gate:
                if refused.is_set() or self.halted:
                    return Handed("refused", "the job is stopping")
                handed = await self._hand(row)
                if handed.fate == "refused":
                    refused.set()
                elif progress is not None:
                    progress(1)
                return handed

        fates = await asyncio.gather(*(one(row) for row in rows))
        cut = next((i for i, f in enumerate(fates) if f.fate == "refused"), len(rows))
        result = BatchResult()
        counts = result.counts
        for row, handed in zip(rows[:cut], fates[:cut], strict=True):
            key, watermark = encode(row[self.options.key])[0], encode(row[self.options.watermark])[0]
            counts.read += 1
            if handed.fate == "rejected":
                counts.rejected += 1
                report.reasons[handed.reason] += 1
                result.rejects.append(Reject(key, watermark, handed.reason, row_json(row), handed.message_id))
                log.debug("%s: row %s rejected: %s", self.where, key, handed.reason)
            else:
                result.loaded_keys.append(key)
                if handed.fate == "loaded":
                    counts.loaded += 1
                else:
                    counts.skipped += 1
        refusal = fates[cut].reason if cut < len(rows) else None
        return result, cut, refusal

    async def _hand(self, row: dict[str, Any]) -> Handed:
        key, watermark = encode(row[self.options.key])[0], encode(row[self.options.watermark])[0]
        exchange = Exchange(
            body=row_json(row).encode("utf-8"),
            headers={
                "content-type": "application/json",
                "etl-job": self.route_id,
                "etl-view": self.options.view,
                "etl-key": key,
                "etl-watermark": watermark,
            },
        )
        exchange.properties[DEDUP_KEY] = f"etl:{self.options.view}:{key}:{watermark}"
        try:
            outcome = await self.handler(exchange, self.options.wait)
        except Exception as exc:
            outcome = Outcome(None, "failed", error=exc)
        return fate_of(outcome)
