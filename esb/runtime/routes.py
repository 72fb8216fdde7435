"""One running route: takes exchanges from its consumer, runs its pipeline, journals.

The caller's reply waits for the journal commit (``wait=False``) or for the
whole route (``wait=True``, e.g. an MLLP application ACK); either way nothing a
caller was told we have can be lost: an unfinished message stays ``received``
in the journal and any node re-runs it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from esb.components import Consumer, Outcome
from esb.errors import DuplicateMessageError, EngineStoppingError, FilteredError
from esb.exchange import DEDUP_KEY, Exchange
from esb.logs import current_exchange, current_route
from esb.routes.lint import LoadedRoute
from esb.runtime.pipeline import Run, run_steps
from esb.uri import redact

if TYPE_CHECKING:
    from esb.runtime.engine import Engine

log = logging.getLogger("esb.route")


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class RouteRunner:
    def __init__(self, engine: Engine, loaded: LoadedRoute) -> None:
        self.engine = engine
        self.loaded = loaded
        self.route = loaded.route
        self.id = loaded.route.id
        #: the 'from' URI as the journal keeps it: no passwords
        self.source = redact(loaded.route.source.value)
        self.consumer: Consumer | None = None
        self._concurrency = asyncio.Semaphore(self.route.concurrency)
        self._pending = asyncio.Semaphore(self.route.max_pending)
        self._tasks: set[asyncio.Task[Outcome]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def handle(self, exchange: Exchange, wait: bool) -> Outcome:
        """The consumer's entry: journal first, then route (now or in the background)."""
        if self.engine.stopping:
            return Outcome(None, "failed", error=EngineStoppingError("engine is shutting down"))
        await self._pending.acquire()
        exchange.route_id = self.id
        try:
            journal = self.engine.journal
            message_id = await asyncio.to_thread(
                journal.accept,
                exchange,
                route_id=self.id,
                source=self.source,
                store_mode=self.route.store,
                claim=True,
                key=exchange.properties.get(DEDUP_KEY),
            )
        except DuplicateMessageError as exc:
            self._pending.release()
            self.engine.context.metrics.duplicates.labels(self.id).inc()
            return Outcome(exc.message_id, "duplicate", exchange)
        except Exception as exc:
            self._pending.release()
            log.error("route %s: journal refused a message: %s", self.id, describe(exc))
            return Outcome(None, "failed", error=exc)
        self.engine.context.metrics.received.labels(self.id).inc()
        task = asyncio.create_task(self._process_and_release(exchange, self.route.store))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if wait:
            return await asyncio.shield(task)
        return Outcome(message_id, "accepted", exchange, done=task)

    async def _process_and_release(self, exchange: Exchange, store_mode: str | None = None) -> Outcome:
        try:
            return await self.process(exchange, store_mode)
        finally:
            self._pending.release()

    async def resume(self, exchange: Exchange) -> None:
        """Re-run a message claimed from the journal (after a crash or a replay)."""
        await self._pending.acquire()
        task = asyncio.create_task(self._process_and_release(exchange))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def process(self, exchange: Exchange, store_mode: str | None = None) -> Outcome:
        """Run the route on a journaled message and complete it.

        ``store_mode`` is the one the message was accepted with, when this node
        accepted it; a resumed message may have been accepted under another
        route file, so the journal reads its own back.
        """
        assert exchange.message_id is not None
        current_exchange.set(exchange.message_id)
        current_route.set(self.id)
        metrics = self.engine.context.metrics
        started = time.perf_counter()
        run = Run()
        error: BaseException | None = None
        async with self._concurrency:
            try:
                await run_steps(self.loaded.compiled.steps, exchange, run)
                status = "processed"
            except FilteredError:
                status = "filtered"
            except Exception as exc:
                status, error = "failed", exc
                run = await self._on_error(exchange, exc)
        try:
            await asyncio.to_thread(
                self.engine.journal.complete,
                exchange.message_id,
                status=status,
                new_deliveries=run.deliveries,
                error=describe(error) if error else None,
                route_id=self.id,
                store_mode=store_mode,
            )
        except Exception as exc:
            # Still 'received' in the journal: its lease runs out and it is re-run.
            log.error("route %s: could not complete message: %s", self.id, describe(exc))
            return Outcome(exchange.message_id, "failed", exchange, exc, run.reply)
        self.engine.workers.wake(sum(d.status == "pending" for d in run.deliveries))
        getattr(metrics, status).labels(self.id).inc()
        metrics.latency.labels(self.id).observe(time.perf_counter() - started)
        if error is not None:
            log.warning("route %s: message %s failed: %s", self.id, exchange.message_id, type(error).__name__)
            log.debug("route %s: message %s failed: %s", self.id, exchange.message_id, error)
        return Outcome(exchange.message_id, status, exchange, error, run.reply)  # type: ignore[arg-type]

    async def _on_error(self, exchange: Exchange, error: BaseException) -> Run:
        """Run on_error steps; deliveries of the failed pass are dropped (all or nothing)."""
        run = Run()
        exchange.properties["error"] = describe(error)
        exchange.headers["esb-error"] = type(error).__name__
        try:
            await run_steps(self.loaded.compiled.on_error, exchange, run)
        except Exception as exc:
            log.error("route %s: on_error failed too: %s", self.id, describe(exc))
        return run

    async def drain(self, timeout: float) -> int:
        """Wait for in-flight exchanges; returns how many were still running."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return len(pending)
