"""The audit trail of a running engine: installed at start, drained at stop, with its sender and pruning.

The engine calls :meth:`AuditRuntime.start` once the database is upgraded
(events from then on are stored), :meth:`started` when it is up (Application
Start), :meth:`stopping` when it begins to stop (Application Stop) and
:meth:`stop` last, after its consumers and services are done, so the events
of in-flight work are stored too. The sender then gets a moment to hand the
last records to the ARR; what it cannot is sent by the next node to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import getpass
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

import esb.audit as audit
from esb.audit import events
from esb.audit.config import AuditConfig, load_audit_config
from esb.audit.model import AuditSource
from esb.audit.sender import Sender
from esb.audit.store import AuditStore
from esb.audit.syslog import transport_for
from esb.audit.trail import AuditTrail
from esb.journal.store import utcnow

log = logging.getLogger("esb.audit")

PRUNE_INTERVAL = 3600.0


def launcher() -> str | None:
    """The operating-system user that started the engine (the Application Launcher), if it has a name."""
    try:
        return getpass.getuser()
    except Exception:
        return None


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.stored = Counter("esb_audit_stored", "Audit records stored in the local buffer", registry=registry)
        self.sent = Counter("esb_audit_sent", "Audit records the Audit Record Repository took", registry=registry)
        self.failures = Counter("esb_audit_failures", "Audit trail failures by stage (store, send, dropped)",
                                ["stage"], registry=registry)  # fmt: skip
        self.unbuffered = Gauge("esb_audit_unbuffered", "Audit events emit() could not buffer since process start",
                                registry=registry)  # fmt: skip
        self.unbuffered.set_function(lambda: float(audit.failures()))


class AuditRuntime:
    def __init__(self, settings: Any, journal: Any, registry: CollectorRegistry) -> None:
        self.settings, self.journal, self.registry = settings, journal, registry
        self.config: AuditConfig | None = None
        self.trail: AuditTrail | None = None
        self.sender: Sender | None = None
        self._prune: asyncio.Task[None] | None = None

    @property
    def node(self) -> str:
        return str(self.settings.node_id)

    async def start(self) -> None:
        config = self.config = load_audit_config()
        loop = asyncio.get_running_loop()
        metrics = _Metrics(self.registry)
        store = AuditStore(self.journal.engine)
        source = AuditSource(config.source_id or self.node, config.site_id or None)
        transport = transport_for(config)
        if transport is not None:
            sender = self.sender = Sender(store, transport, config, node=self.node, on_sent=metrics.sent.inc,
                                          on_failure=lambda stage: metrics.failures.labels(stage).inc())  # fmt: skip

        def stored(count: int) -> None:  # the writer thread
            metrics.stored.inc(count)
            if self.sender is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed: the next node sends them
                    loop.call_soon_threadsafe(sender.wake)

        self.trail = AuditTrail(store, source, on_stored=stored,
                                on_failure=lambda stage: metrics.failures.labels(stage).inc())  # fmt: skip
        self.trail.start()
        audit.install(self.trail)
        if self.sender is not None:
            self.sender.start()
        self._prune = asyncio.create_task(self._prune_loop(store, config.retention), name="audit-prune")
        where = str(config.repository) if config.repository else "stored locally only"
        log.info("audit trail on: %s", where)

    def started(self) -> None:
        audit.emit(events.application_activity(started=True, node=self.node, user=launcher()))

    def stopping(self) -> None:
        if self.trail is not None:
            audit.emit(events.application_activity(started=False, node=self.node, user=launcher()))

    async def stop(self) -> None:
        if self._prune is not None:
            self._prune.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prune
        if self.trail is not None:
            await asyncio.to_thread(self.trail.stop)
            audit.uninstall(self.trail)
            self.trail = None
        if self.sender is not None:
            await self.sender.stop()
            self.sender = None

    async def _prune_loop(self, store: AuditStore, retention: float) -> None:
        while True:
            try:
                cutoff = utcnow() - dt.timedelta(seconds=retention)
                while await asyncio.to_thread(store.prune, cutoff):
                    pass
            except Exception as exc:
                log.error("pruning audit records failed: %s", type(exc).__name__)
            await asyncio.sleep(PRUNE_INTERVAL)


@contextlib.contextmanager
def trail_for(engine: Any, node: str) -> Iterator[AuditTrail]:
    """A trail for a short-lived process (the admin CLI): installed for the block, stored when it ends."""
    config = load_audit_config()
    trail = AuditTrail(AuditStore(engine), AuditSource(config.source_id or node, config.site_id or None))
    trail.start()
    audit.install(trail)
    try:
        yield trail
    finally:
        trail.stop()
        audit.uninstall(trail)
