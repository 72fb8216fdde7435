"""When a job runs: at each cron tick (once per cluster), or all the time, polling.

With ``schedule`` the node whose insert of the tick wins (``journal.claim_tick``,
as ``timer:`` does) takes the job's lease and reads until the view is
exhausted; a run left unfinished by a node that died is resumed when an engine
starts, not a day later. Without ``schedule`` one node holds the job and polls
every ``poll``; the others stand by and take it over when its lease runs out.
:meth:`EtlConsumer.run_until_exhausted` is the foreground form ``esb etl run`` uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import select

from adapters.etl import schema as t
from adapters.etl.job import EtlJob, Progress, RunReport, loggable
from adapters.etl.options import EtlOptions
from adapters.timer import Schedule, TimerOptions, tick_time
from esb.components import Consumer, Handler
from esb.journal import Journal

log = logging.getLogger("esb.adapters.etl")


class EtlConsumer(Consumer):
    def __init__(
        self,
        options: EtlOptions,
        handler: Handler,
        route_id: str,
        journal: Journal,
        owner: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.route_id = route_id
        self.journal = journal
        self.clock = clock
        self.job = EtlJob(options, handler, route_id, journal.engine, owner)
        #: every run this consumer finished (tests and the CLI read them)
        self.reports: list[RunReport] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = self._scheduled() if self.options.schedule else self._polling()
        self._task = asyncio.create_task(loop, name=f"etl-{self.route_id}")

    async def stop(self) -> None:
        self.job.stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.job.give_back()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.job.stopping.wait(), timeout=max(seconds, 0.0))
        except TimeoutError:
            pass

    # -- polling: one node holds the job ------------------------------------------------

    async def _polling(self) -> None:
        while not self.job.stopping.is_set():
            try:
                if self.job.held or (await self.job.take())[0]:
                    self.reports.extend(await self.job.run(lazy=True))
            except Exception as exc:
                log.error("%s: read failed: %s", self.job.where, loggable(exc))
                log.debug("%s: read failed", self.job.where, exc_info=True)
            await self._sleep(self.options.poll)

    # -- scheduled: each tick once per cluster --------------------------------------------

    async def _scheduled(self) -> None:
        if await self._left_unfinished():
            log.info("%s: resuming a run left unfinished", self.job.where)
            await self._attempt()
        assert self.options.schedule is not None
        schedule = Schedule(TimerOptions(name=self.route_id, cron=self.options.schedule,
                                         timezone=self.options.timezone))  # fmt: skip
        tick = schedule.first(self.clock())
        while True:
            await self._sleep(tick - self.clock())
            if self.job.stopping.is_set():
                return
            if self.clock() < tick:
                continue  # the loop's clock woke us before the wall clock
            try:
                won = await asyncio.to_thread(self.journal.claim_tick, self.route_id, tick_time(tick))
            except Exception as exc:
                log.error("%s: cannot claim the tick: %s", self.job.where, loggable(exc))
                won = False
            if won:
                await self._attempt()
            tick = schedule.following(tick, self.clock())

    async def _left_unfinished(self) -> bool:
        def latest() -> str | None:
            r = t.runs.c
            query = select(r.status).where(r.route_id == self.route_id).order_by(r.started_at.desc()).limit(1)
            with self.journal.engine.connect() as conn:
                return conn.execute(query).scalar_one_or_none()

        try:
            return await asyncio.to_thread(latest) in (t.RUNNING, t.INTERRUPTED)
        except Exception as exc:
            log.error("%s: cannot read the job's runs: %s", self.job.where, loggable(exc))
            return False

    async def _attempt(self) -> None:
        try:
            taken, _ = await self.job.take()
            if not taken:
                log.info("%s: the job is running on another node; this tick is left to it", self.job.where)
                return
            try:
                reports = await self.job.run()
            finally:
                await self.job.give_back()
            self.reports.extend(reports)  # after the job is given back: a finished run holds nothing
        except Exception as exc:
            log.error("%s: run failed: %s", self.job.where, loggable(exc))
            log.debug("%s: run failed", self.job.where, exc_info=True)

    # -- foreground (esb etl run) ---------------------------------------------------------

    async def run_until_exhausted(
        self, *, progress: Progress | None = None, since: str | None = None, reset: bool = False,
        total: Callable[[int], None] | None = None,
    ) -> list[RunReport]:  # fmt: skip
        """Take the job (AdapterError when a live node holds it), run it to the end of the view, give it back.

        ``reset`` forgets the checkpoint first; ``since`` (implies ``reset``)
        starts at that watermark instead of the ``since`` option. ``total`` is
        told how many rows are ahead before the first one is read.
        """
        if since is not None:  # a wrong value (or view, or column) fails before anything changes
            await asyncio.to_thread(self.job.source.bound, since, "--since")
        taken, _ = await self.job.take()
        if not taken:
            raise await self.job.busy_error()
        try:
            if reset or since is not None:
                await asyncio.to_thread(self.job.state.reset)
            if total is not None:
                total(await self.job.remaining(since))
            reports = await self.job.run(progress=progress, since=since)
        finally:
            await self.job.give_back()
        self.reports.extend(reports)
        return reports
