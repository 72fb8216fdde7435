"""``timer:NAME?period=5s`` or ``timer:NAME?cron=0 2 * * *``: start a route on a schedule.

Every node of a cluster runs the same routes, yet a nightly job must run once.
Each tick therefore has a time every node computes alike (a multiple of the
period since the epoch, or the cron schedule's next time), and only the node
whose insert of (route, tick) into the journal wins fires it. ``repeat`` counts
the ticks this node took part in, fired here or elsewhere, so nodes started
together fire ``repeat`` times in all.

A tick's route runs to its end before the node waits for the next tick, and
ticks that went by meanwhile are skipped, not caught up: on one node a job
never overlaps itself. On several nodes a slow run on one may still overlap
the next tick won by another; a job that must never run twice at once takes a
claim of its own (as the XDS-I publisher does, ``profiles.xdsi.claims``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from croniter import croniter

from esb.components import Adapter, Consumer, Endpoint, Handler
from esb.errors import EngineStoppingError
from esb.exchange import Exchange
from esb.journal import Journal
from esb.uri import Duration, EndpointUri, did_you_mean

log = logging.getLogger("esb.adapters.timer")


@dataclass(frozen=True, kw_only=True)
class TimerOptions:
    name: str = field(metadata={"doc": "Timer name, set as the 'timer-name' header."})
    period: Duration | None = field(
        default=None, metadata={"doc": "Fire at every multiple of this since the epoch (all nodes agree)."}
    )
    cron: str | None = field(
        default=None,
        metadata={"doc": "Cron schedule instead of period ('0 2 * * *'; '+' may stand for spaces in the URI)."},
    )
    timezone: str = field(default="UTC", metadata={"doc": "IANA time zone the cron schedule is read in."})
    delay: Duration = field(default=Duration(0), metadata={"doc": "No tick fires before this long after start."})
    repeat: int = field(default=0, metadata={"doc": "Stop after this many ticks; 0: never."})
    body: str = field(default="", metadata={"doc": "Text body of the fired message."})


class Schedule:
    """Tick times in epoch seconds, computed the same on every node."""

    def __init__(self, options: TimerOptions) -> None:
        self.period = float(options.period) if options.period else None
        self.cron = options.cron or ""
        self.zone = zoneinfo.ZoneInfo(options.timezone)

    def _cron_next(self, after: float) -> float:
        start = dt.datetime.fromtimestamp(after, self.zone)
        return float(croniter(self.cron, start).get_next(float))

    def first(self, not_before: float) -> float:
        """The first tick at or after ``not_before``."""
        if self.period:
            return math.ceil(not_before / self.period) * self.period
        return self._cron_next(not_before - 1e-3)

    def following(self, tick: float, now: float) -> float:
        """The next tick after ``tick`` that is not past yet: missed ticks are skipped, not caught up."""
        if self.period:
            # round() recovers the tick's index exactly where tick / period may not.
            index = max(round(tick / self.period) + 1, math.floor(now / self.period) + 1)
            return index * self.period
        return self._cron_next(max(tick, now))


def tick_time(tick: float) -> dt.datetime:
    """Naive UTC, the journal's convention; the same float gives the same row on every node."""
    return dt.datetime.fromtimestamp(tick, dt.UTC).replace(tzinfo=None)


class TimerConsumer(Consumer):
    def __init__(
        self,
        options: TimerOptions,
        handler: Handler,
        route_id: str,
        journal: Journal | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.handler = handler
        self.route_id = route_id
        self.journal = journal
        self.clock = clock
        self.schedule = Schedule(options)
        #: ticks this node took part in, fired here, and lost to another node
        self.ticks = 0
        self.fired = 0
        self.lost = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"timer-{self.route_id}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task

    @property
    def finished(self) -> bool:
        """True once ``repeat`` ticks went by (or the consumer stopped)."""
        return self._task is not None and self._task.done()

    async def _sleep_until(self, when: float) -> bool:
        """False when stopping; loops because the loop's monotonic clock may wake before the wall clock."""
        while (left := when - self.clock()) > 0:
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=left)
                return False
            except TimeoutError:
                pass
        return not self._stopping.is_set()

    async def _run(self) -> None:
        options = self.options
        tick = self.schedule.first(self.clock() + options.delay)
        while options.repeat == 0 or self.ticks < options.repeat:
            if not await self._sleep_until(tick):
                return
            self.ticks += 1
            try:
                await self._tick(tick)
            except Exception as exc:
                log.error("timer %s (route %s): tick failed: %s", options.name, self.route_id, type(exc).__name__)
            tick = self.schedule.following(tick, self.clock())

    async def _tick(self, tick: float) -> None:
        if self.journal is not None:
            won = await asyncio.to_thread(self.journal.claim_tick, self.route_id, tick_time(tick))
            if not won:
                self.lost += 1
                return
        fired_at = dt.datetime.fromtimestamp(tick, dt.UTC)
        exchange = Exchange(
            body=self.options.body.encode("utf-8"),
            headers={
                "timer-name": self.options.name,
                "timer-fired-at": fired_at.isoformat(),
                "timer-count": str(self.ticks),
            },
        )
        outcome = await self.handler(exchange, False)
        if outcome.status == "failed":
            # The tick is claimed but not journaled; a lost tick is logged, not fired twice.
            if isinstance(outcome.error, EngineStoppingError):
                log.info("timer %s (route %s): tick %s not fired: the engine is stopping",
                         self.options.name, self.route_id, fired_at.isoformat())  # fmt: skip
                return
            log.error("timer %s (route %s): tick %s was not taken: %s",
                      self.options.name, self.route_id, fired_at.isoformat(), type(outcome.error).__name__)  # fmt: skip
            return
        self.fired += 1
        if outcome.done is not None:
            await self._run_over(outcome.done)

    async def _run_over(self, run: asyncio.Future[Any]) -> None:
        """Until the tick's route run ends (the next tick waits for it) or the engine stops.

        On a stop the run is left to the engine's drain, which bounds it by
        the shutdown timeout (a run still going then resumes from the journal).
        """
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()


def cron_problem(expression: str) -> str | None:
    if not croniter.is_valid(expression):
        return (
            f"cron expression '{expression}' is not valid "
            "(5 fields: minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'; a 6th is seconds)"
        )
    return None


class TimerAdapter(Adapter):
    scheme = "timer"
    Options: ClassVar[type[Any]] = TimerOptions
    summary = (
        "Start a route on a period or a cron schedule, once per tick across all nodes;"
        " a run is not overlapped by the next tick on its node."
    )

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        return {"name": ((uri.host or "") + uri.path).strip("/")}

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        options: TimerOptions = endpoint.options
        where = f"timer:{options.name}"
        if not consumer:
            return [f"{where}: a timer only starts routes; it cannot be used in 'to:'"]
        out: list[str] = []
        if not options.name:
            out.append("timer: needs a name, e.g. timer:nightly?cron=0 2 * * *")
        if (options.period is None) == (options.cron is None):
            got = "both" if options.period is not None else "neither"
            out.append(f"{where}: give exactly one of period or cron (got {got})")
        if options.period is not None and options.period <= 0:
            out.append(f"{where}: period must be more than 0 (got {options.period:g}s)")
        if options.cron is not None:
            problem = cron_problem(options.cron)
            if problem:
                out.append(f"{where}: {problem}")
        if options.repeat < 0:
            out.append(f"{where}: repeat must be 0 (forever) or more (got {options.repeat})")
        try:
            zoneinfo.ZoneInfo(options.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            out.append(
                f"{where}: timezone '{options.timezone}' is not known"
                + (did_you_mean(options.timezone, zoneinfo.available_timezones()) or " (e.g. UTC, Europe/Paris)")
            )
        return out

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        return TimerConsumer(endpoint.options, handler, route_id, self.context.journal)
