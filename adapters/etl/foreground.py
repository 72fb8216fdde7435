"""One ETL route run in this process until its view is exhausted (``esb etl run``).

The route is loaded and compiled exactly as the engine does (its file alone,
so another route's problem does not stop this one), the services it calls are
started, and only its consumer runs, in "until exhausted" mode; nothing
listens and no delivery worker runs. Deliveries the route queues (``to:`` an
adapter endpoint) wait in the journal for the engine's workers.

The journal sees this process as node ``<node_id>/etl-<route>``: stable, so a
rerun after a crash takes back that run's unfinished messages at once, and
apart from the engine's own node, whose messages it must not take.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Callable, Iterable
from pathlib import Path

from adapters.etl.consumer import EtlConsumer
from adapters.etl.job import Progress, RunReport
from esb.errors import ConfigError, LintError
from esb.exchange import Exchange, attachments_from_headers
from esb.routes.lint import lint, route_files
from esb.runtime.engine import Engine
from esb.runtime.routes import RouteRunner
from esb.settings import Settings
from esb.uri import did_you_mean


def route_file(paths: Iterable[Path], route_id: str) -> Path:
    """The file of route ``route_id`` (the id is the file stem) under ``paths``."""
    files, errors = route_files(paths)
    if errors:
        raise LintError(errors)
    found = [f for f in files if f.stem == route_id]
    if not found:
        known = sorted(f.stem for f in files)
        hint = did_you_mean(route_id, known) or (f" (routes: {', '.join(known)})" if known else " (no route files)")
        raise ConfigError(f"no route '{route_id}' under {', '.join(str(p) for p in paths)}{hint}")
    if len(found) > 1:
        raise ConfigError(f"route '{route_id}' is defined twice: {found[0]} and {found[1]}")
    return found[0]


class ForegroundJob:
    """The engine parts one ETL route needs; ``async with`` starts and stops them."""

    def __init__(self, settings: Settings, route_id: str, paths: Iterable[Path]) -> None:
        self.route_id = route_id
        self.file = route_file(paths, route_id)
        own = dataclasses.replace(settings, node_id=f"{settings.node_id}/etl-{route_id}", route_paths=(self.file,))
        self.engine = Engine(own)
        self.consumer: EtlConsumer | None = None
        self.runner: RouteRunner | None = None

    async def __aenter__(self) -> ForegroundJob:
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self) -> None:
        engine = self.engine
        if engine.settings.db_auto_upgrade:
            await asyncio.to_thread(engine.journal.upgrade)
        result = lint([self.file], engine.context)
        if result.errors:
            raise LintError(result.errors)
        loaded = next((r for r in result.routes if r.route.id == self.route_id), None)
        if loaded is None:
            raise ConfigError(f"route '{self.route_id}' ({self.file}) is disabled (enabled: false)")
        if loaded.adapter.scheme != "etl":
            raise ConfigError(
                f"route '{self.route_id}' reads from '{loaded.adapter.scheme}:', not 'etl:'; "
                "esb etl runs ETL routes only",
                loaded.route.source.position,
            )
        for service in engine.context.services.values():
            await service.start()
        self.runner = RouteRunner(engine, loaded)
        consumer = loaded.adapter.consumer(loaded.endpoint, self.runner.handle, self.route_id)
        assert isinstance(consumer, EtlConsumer)
        self.consumer = consumer
        engine.routes[self.route_id] = self.runner
        await self._resume_unfinished()

    async def _resume_unfinished(self) -> None:
        """Messages an earlier run journaled but did not finish (it was killed): run them first.

        Their rows are answered ``duplicate`` when read again, so without this
        they would wait for an engine that has this route.
        """
        assert self.runner is not None
        journal = self.engine.journal
        await asyncio.to_thread(journal.reclaim_own)
        while claimed := await asyncio.to_thread(journal.claim_messages, 64, [self.route_id]):
            for row in claimed:
                exchange = Exchange(
                    body=row.body, headers=row.headers, correlation_id=row.correlation_id, route_id=row.route_id,
                    message_id=row.id, attachments=attachments_from_headers(row.headers),
                )  # fmt: skip
                await self.runner.resume(exchange)
            await self.runner.drain(self.engine.settings.shutdown_timeout)

    async def run(
        self,
        *,
        since: str | None = None,
        reset: bool = False,
        progress: Progress | None = None,
        total: Callable[[int], None] | None = None,
    ) -> list[RunReport]:
        """Run the job to the end of the view; Ctrl-C stops it after the batch in hand."""
        assert self.consumer is not None
        stopping = self.consumer.job.stopping
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGINT, stopping.set)
            loop.add_signal_handler(signal.SIGTERM, stopping.set)
        except (RuntimeError, ValueError):  # not the main thread (tests)
            pass
        try:
            return await self.consumer.run_until_exhausted(progress=progress, since=since, reset=reset, total=total)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.remove_signal_handler(sig)
                except (RuntimeError, ValueError):
                    pass

    async def unreadable(self) -> int:
        """Rows the job can never read (no watermark or no key), for the report."""
        assert self.consumer is not None
        return await asyncio.to_thread(self.consumer.job.source.unreadable)

    async def close(self) -> None:
        engine = self.engine
        engine.stopping = True
        if self.runner is not None:
            await self.runner.drain(engine.settings.shutdown_timeout)
        await engine.context.close()
        await asyncio.to_thread(engine.journal.close)
