"""Polling a staging table: claim a batch, hand each row over, mark it.

Each row becomes one exchange whose ``DEDUP_KEY`` is ``TABLE:KEY``: a row read
again after a crash (its mark was never written) is answered ``duplicate`` by
the journal if its message is held already, and is then only marked done. So
an engine killed mid-batch loses nothing (unmarked rows stay pending or their
claim expires) and processes nothing twice (the journal keeps one message per
key). A row that cannot be mapped, or whose route fails (``wait=true``), is
marked failed with the reason and the batch goes on; a row the engine could
not take (stopping, journal down) stays pending for a later poll.

Rows are handed over in order and the consumer then waits for their routes
together (each outcome's ``done``), so a batch costs one journal commit per
row plus the routes, which run as the route's ``concurrency`` allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.exc import OperationalError

from adapters.table.claim import Batch, Claimer, Mark, Row
from adapters.table.database import reflect_table, safe_url, staging_engine
from adapters.table.mapping import MappingError, row_body
from adapters.table.options import TableOptions, pairs
from esb.components import Consumer, Handler, Outcome
from esb.errors import ConfigError
from esb.exchange import DEDUP_KEY, Exchange

log = logging.getLogger("esb.adapters.table")

#: longest pause between attempts to open a table that is missing or unreachable
MAX_BACKOFF = 60.0


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return "failed"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def reason(exc: BaseException) -> str:
    """A polling error for the log: the driver's words only for connection trouble (other texts may quote values)."""
    if isinstance(exc, OperationalError):
        first = str(exc.orig).strip().splitlines()[0][:200] if str(exc.orig).strip() else ""
        return f"{type(exc.orig).__name__}: {first}" if first else type(exc.orig).__name__
    return type(exc).__name__


def key_text(key: tuple[Any, ...]) -> str:
    return "|".join(str(part) for part in key)


class TableConsumer(Consumer):
    def __init__(
        self, options: TableOptions, handler: Handler, route_id: str, node_id: str, *, stop_timeout: float = 30.0
    ) -> None:
        self.options = options
        self.handler = handler
        self.route_id = route_id
        self.node_id = node_id
        self.stop_timeout = stop_timeout
        self.columns: list[tuple[str, str]] = []
        self.claimer: Claimer | None = None
        #: rows handed over and marked (tests and metrics read them)
        self.taken = 0
        self.failed = 0
        #: the last reason the table could not be polled (None: polling)
        self.problem: str | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._recovered_at = 0.0

    @property
    def where(self) -> str:
        return f"route '{self.route_id}': table '{self.options.table}'"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"table-poll-{self.route_id}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- preparing -----------------------------------------------------------------

    def prepare(self) -> Claimer:
        """Reflect the table and check every column the options name (blocking; ConfigError when wrong)."""
        engine = staging_engine(self.options.url, where=self.where)
        table = reflect_table(engine, self.options.table)
        if self.options.columns:
            self.columns = pairs(self.options.columns, what="columns")
        else:
            # the consumer's own bookkeeping is not the row's data (the status is: the pending value)
            own = {self.options.error, self.options.processed_at, self.options.claimed_by, self.options.claimed_at}
            self.columns = [(name, name) for name in table.columns.keys() if name not in own]
        self.claimer = Claimer(
            engine, table, self.options, [column for column, _ in self.columns], node_id=self.node_id
        )
        log.info(
            "route %s: polling table %s on %s (claim=%s)",
            self.route_id, table.fullname, safe_url(self.options.url), self.claimer.mode,
        )  # fmt: skip
        return self.claimer

    # -- loop ----------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _loop(self) -> None:
        backoff = float(self.options.poll)
        while not self._stopping.is_set():
            try:
                if self.claimer is None:
                    await asyncio.to_thread(self.prepare)
                full = await self.poll()
                self.problem = None
                backoff = float(self.options.poll)
                if full:
                    continue  # a full batch: more rows are waiting, no pause
            except ConfigError as exc:
                self.problem = str(exc)
                log.error("%s: %s (retrying in %gs)", self.where, exc, backoff)
            except Exception as exc:
                self.problem = describe(exc)
                self.claimer = None  # the table may have changed: reflect it again before the next poll
                log.error("%s: polling failed: %s (retrying in %gs)", self.where, reason(exc), backoff)
                log.debug("%s: polling error", self.where, exc_info=True)
            if self.problem is not None:
                await self._sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            await self._sleep(self.options.poll)

    async def poll(self) -> bool:
        """Claim one batch, hand it over, mark it; True when the batch was full (more may be waiting)."""
        claimer = self.claimer if self.claimer is not None else await asyncio.to_thread(self.prepare)
        await self._take_back_stale(claimer)
        batch = await asyncio.to_thread(claimer.claim)
        if not batch.rows:
            return False
        try:
            marks = await self._hand_over(claimer, batch)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(claimer.abort, batch))
            raise
        await asyncio.shield(asyncio.to_thread(claimer.finish, batch, marks))
        self.taken += sum(m.verdict != "pending" for m in marks)
        self.failed += sum(m.verdict == "failed" for m in marks)
        return len(batch.rows) >= self.options.batch and all(m.verdict != "pending" for m in marks)

    async def _take_back_stale(self, claimer: Claimer) -> None:
        """Mark mode, at most every lease/4: put the rows of dead nodes back."""
        now = asyncio.get_running_loop().time()
        if claimer.mode != "mark" or now - self._recovered_at < self.options.lease / 4:
            return
        self._recovered_at = now
        count = await asyncio.to_thread(claimer.take_back_stale)
        if count:
            log.warning("%s: %d rows claimed longer than %gs ago were put back", self.where, count, self.options.lease)

    # -- handing over --------------------------------------------------------------

    def exchange(self, row: Row) -> Exchange:
        """The message for one row (MappingError when a value has no JSON form)."""
        key = key_text(row.key)
        values = row.values | {self.options.status: row.status}  # the pending value, not mark mode's 'claimed'
        exchange = Exchange(
            body=row_body(values, self.columns),
            headers={
                "table-name": self.options.table,
                "table-key": key,
                "table-status": str(row.status),
                "content-type": "application/json",
                "charset": "utf-8",
            },
        )
        exchange.properties[DEDUP_KEY] = f"{self.options.table}:{key}"
        return exchange

    async def _hand_over(self, claimer: Claimer, batch: Batch) -> list[Mark]:
        """Hand the rows over in order; with wait, then wait for their routes. One mark per row."""
        marks: dict[tuple[Any, ...], Mark] = {}
        running: dict[tuple[Any, ...], asyncio.Future[Outcome]] = {}
        for row in batch.rows:
            if self._stopping.is_set():
                break
            if row.problem is not None:
                log.warning("%s: a row cannot be read (%s); marked %s", self.where, row.problem, self.options.failed)
                marks[row.key] = Mark(row.key, "failed", f"reading: {row.problem}")
                continue
            try:
                exchange = self.exchange(row)
            except MappingError as exc:
                log.warning("%s: a row cannot be mapped; marked %s", self.where, self.options.failed)
                log.debug("%s: row %s cannot be mapped: %s", self.where, key_text(row.key), exc)
                marks[row.key] = Mark(row.key, "failed", f"mapping: {exc}")
                continue
            try:
                outcome = await self.handler(exchange, False)
            except Exception as exc:
                outcome = Outcome(None, "failed", error=exc)
            if outcome.status == "failed" and outcome.message_id is None:
                log.warning("%s: a row was not taken (%s); it stays pending", self.where, type(outcome.error).__name__)
                break  # the engine takes nothing now (stopping, journal down): leave the rest for later
            if outcome.status == "accepted" and self.options.wait and outcome.done is not None:
                running[row.key] = outcome.done
            else:
                marks[row.key] = self._verdict(row.key, outcome)
        if running:
            await self._wait_for_routes(claimer, batch, running, marks)
        # rows not handed over, or whose routes did not end in time: back to pending
        return [marks.get(row.key) or Mark(row.key, "pending") for row in batch.rows]

    async def _wait_for_routes(
        self,
        claimer: Claimer,
        batch: Batch,
        running: dict[tuple[Any, ...], asyncio.Future[Outcome]],
        marks: dict[tuple[Any, ...], Mark],
    ) -> None:
        """Collect route outcomes, renewing mark-mode claims meanwhile; on stop, wait at most stop_timeout."""
        futures = {asyncio.ensure_future(asyncio.shield(f)): key for key, f in running.items()}
        pending = set(futures)
        stop_deadline: float | None = None
        loop = asyncio.get_running_loop()
        while pending:
            timeout = self.options.lease / 4 if claimer.mode == "mark" else 1.0
            if self._stopping.is_set():
                stop_deadline = stop_deadline or loop.time() + self.stop_timeout
                timeout = min(timeout, stop_deadline - loop.time())
                if timeout <= 0:
                    log.warning("%s: %d routes still running at stop; rows left unmarked", self.where, len(pending))
                    for future in pending:
                        future.cancel()  # only the shield: the route runs on, the journal holds it
                    return
            finished, pending = await asyncio.wait(pending, timeout=timeout)
            for future in finished:
                key = futures[future]
                try:
                    marks[key] = self._verdict(key, future.result())
                except Exception as exc:
                    marks[key] = self._verdict(key, Outcome(None, "failed", error=exc))
            if pending and claimer.mode == "mark":
                batch.open_keys = {futures[f] for f in pending}
                await asyncio.to_thread(claimer.renew, batch)

    def _verdict(self, key: tuple[Any, ...], outcome: Outcome) -> Mark:
        if outcome.status == "failed":
            if outcome.message_id is None:
                return Mark(key, "pending")
            return Mark(key, "failed", describe(outcome.error))
        return Mark(key, "done")
