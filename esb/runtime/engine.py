"""The engine: loads routes, starts consumers, services, delivery workers and housekeeping.

A node holds no state of its own: everything it must not lose is in the journal,
so stopping, killing or adding nodes is safe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from esb import __version__
from esb.audit.runtime import AuditRuntime
from esb.errors import LintError
from esb.exchange import Exchange, attachments_from_headers
from esb.journal import Journal
from esb.journal.admin import queue_depths
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.runtime.delivery import DeliveryWorkers
from esb.runtime.routes import RouteRunner
from esb.security.time import TimeKeeper, load_time_config
from esb.settings import Settings

log = logging.getLogger("esb.engine")

RECOVERY_INTERVAL = 1.0
PRUNE_INTERVAL = 60.0


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.journal = Journal(
            settings.db_url, node_id=settings.node_id, lease=settings.delivery_lease, spool_root=settings.spool_dir
        )
        self.context = EngineContext(settings, self.journal)
        self.audit = AuditRuntime(settings, self.journal, self.context.metrics.registry)
        self.routes: dict[str, RouteRunner] = {}
        self.workers = DeliveryWorkers(self)
        self.stopping = False
        self.ready = False
        self._housekeeping: list[asyncio.Task[None]] = []

    @property
    def http_port(self) -> int:
        """The bound admin port (differs from settings when they ask for port 0)."""
        return self.context.http.bound_port(self.settings.listen_host, self.settings.http_port)

    async def start(self) -> None:
        if self.settings.db_auto_upgrade:
            await asyncio.to_thread(self.journal.upgrade)
        resumed, requeued = await asyncio.to_thread(self.journal.reclaim_own)
        if resumed or requeued:
            log.info("taking back %d unfinished messages and %d deliveries of node %s",
                     resumed, requeued, self.settings.node_id)  # fmt: skip
        result = lint(self.settings.route_paths, self.context)
        if result.errors:
            raise LintError(result.errors)
        await self.audit.start()
        self._mount_admin()
        for service in self.context.services.values():
            await service.start()
        for loaded in result.routes:
            runner = RouteRunner(self, loaded)
            runner.consumer = loaded.adapter.consumer(loaded.endpoint, runner.handle, loaded.route.id)
            self.routes[loaded.route.id] = runner
        for runner in self.routes.values():
            assert runner.consumer is not None
            await runner.consumer.start()
        await self.context.http.start()
        self.context.metrics.watch_queues(lambda: queue_depths(self.journal.engine))
        self.workers.start()
        self._housekeeping = [
            asyncio.create_task(self._recover_loop(), name="recover"),
            asyncio.create_task(self._prune_loop(), name="prune"),
        ]
        clock = self._time_keeper()
        if clock is not None:
            self._housekeeping.append(asyncio.create_task(clock.run(), name="consistent-time"))
        self.ready = True
        self.audit.started()
        log.info("engine %s up: %d routes, http on %s:%d, node %s", __version__, len(self.routes),
                 self.settings.listen_host, self.http_port, self.settings.node_id)  # fmt: skip

    async def stop(self) -> None:
        """Stop taking messages, drain in-flight ones, then stop delivering."""
        if self.stopping:
            return
        self.stopping = True
        self.ready = False
        self.audit.stopping()
        timeout = self.settings.shutdown_timeout
        for runner in self.routes.values():
            if runner.consumer is not None:
                await runner.consumer.stop()
        for task in self._housekeeping:
            task.cancel()
        await asyncio.gather(*self._housekeeping, return_exceptions=True)
        left = 0
        for runner in self.routes.values():
            left += await runner.drain(timeout)
        if left:
            log.warning("%d exchanges still running at shutdown; they resume from the journal", left)
        await self.workers.stop(timeout)
        await self.context.close()
        await self.audit.stop()
        await self._connections_returned(timeout=5.0)
        await asyncio.to_thread(self.journal.close)
        log.info("engine stopped")

    async def _connections_returned(self, timeout: float) -> None:
        """A cancelled task's database call may still be running in its worker thread;
        closing the pool under it would leak that connection."""
        pool: Any = self.journal.engine.pool
        deadline = asyncio.get_running_loop().time() + timeout
        while getattr(pool, "checkedout", lambda: 0)() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    async def run_forever(self) -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await self.start()
        try:
            await done.wait()
        finally:
            await self.stop()

    # -- housekeeping --------------------------------------------------------------

    def _time_keeper(self) -> TimeKeeper | None:
        """The Consistent Time check (config/time.yaml); None when no NTP server is configured."""
        config = load_time_config()
        if not config.servers:
            return None
        metrics = self.context.metrics
        node = self.settings.node_id
        return TimeKeeper(config, node=node, on_offset=metrics.clock_offset.set, on_failure=metrics.clock_unchecked.inc)

    async def _recover_loop(self) -> None:
        route_ids = list(self.routes)
        while True:
            await asyncio.sleep(RECOVERY_INTERVAL)
            try:
                claimed = await asyncio.to_thread(self.journal.claim_messages, 64, route_ids)
            except Exception as exc:
                log.error("cannot claim unfinished messages: %s", exc)
                continue
            for row in claimed:
                exchange = Exchange(
                    body=row.body, headers=row.headers, correlation_id=row.correlation_id,
                    route_id=row.route_id, message_id=row.id, attachments=attachments_from_headers(row.headers),
                )  # fmt: skip
                log.info("resuming message %s on route %s (attempt %d)", row.id, row.route_id, row.attempts)
                await self.routes[row.route_id].resume(exchange)

    async def _prune_loop(self) -> None:
        """Global retention, and each route's own ``retention`` where it sets one."""
        retention = self.settings.retention
        older = dt.timedelta(seconds=retention) if retention else None
        own = {r.id: dt.timedelta(seconds=r.route.retention) for r in self.routes.values() if r.route.retention}
        while True:
            try:
                while await asyncio.to_thread(self.journal.prune, older, exclude_routes=list(own)):
                    pass
                for route_id, age in own.items():
                    while await asyncio.to_thread(self.journal.prune, age, route_id=route_id):
                        pass
            except Exception as exc:
                log.error("pruning failed: %s", exc)
            await asyncio.sleep(PRUNE_INTERVAL)

    # -- admin endpoints -----------------------------------------------------------

    def _mount_admin(self) -> None:
        host, port = self.settings.listen_host, self.settings.http_port
        hub = self.context.http
        hub.configure_engine_port(self.settings)  # TLS and allowed peers from listen.tls_*

        async def healthz(request: web.Request) -> web.StreamResponse:
            return web.json_response({"status": "ok", "version": __version__})

        async def readyz(request: web.Request) -> web.StreamResponse:
            problems: dict[str, Any] = {}
            if not self.ready:
                problems["engine"] = "starting or stopping"
            try:
                await asyncio.to_thread(self._ping_db)
            except Exception as exc:
                problems["database"] = type(exc).__name__
            status = 503 if problems else 200
            body = {"status": "ready" if not problems else "not ready", **problems,
                    "routes": sorted(self.routes)}  # fmt: skip
            return web.json_response(body, status=status)

        async def metrics(request: web.Request) -> web.StreamResponse:
            payload = await asyncio.to_thread(generate_latest, self.context.metrics.registry)
            return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})

        hub.mount(host, port, "/healthz", healthz)
        hub.mount(host, port, "/readyz", readyz)
        hub.mount(host, port, "/metrics", metrics)

    def _ping_db(self) -> None:
        with self.journal.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
