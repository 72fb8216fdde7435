"""What adapters and services get from the engine: settings, journal, shared servers.

One context per engine. Producers are cached per URI so a destination keeps its
connection pool; services are created once and started with the engine.

A queued delivery names its destination in the journal with the passwords
redacted (``esb.uri.redact``): the database is read by admins, backed up and
copied, and a route file's ``${SECRET}`` must not end up there in clear. The
real URI stays in memory, known from the routes this node compiled; every
node runs the same route files, so any node can deliver any row.
"""

from __future__ import annotations

import asyncio
from typing import Any

from esb import registry
from esb.components import Adapter, Endpoint, Producer, Service
from esb.errors import ComponentError, DeliveryError, UnknownServiceError
from esb.http.hub import HttpHub
from esb.journal import Journal
from esb.metrics import Metrics
from esb.settings import Settings
from esb.uri import parse_uri, redact


class EngineContext:
    def __init__(self, settings: Settings, journal: Journal | None = None) -> None:
        self.settings = settings
        self.journal = journal
        self.metrics = Metrics()
        self.http = HttpHub()
        self._adapters: dict[str, Adapter] = {}
        self._producers: dict[str, Producer] = {}
        #: redacted destination (as the journal keeps it) -> the URI with its passwords
        self._secret_destinations: dict[str, str] = {}
        self._services: dict[str, Service] = {}
        self._lock = asyncio.Lock()
        #: in-process endpoints (direct:, seda:) register their consumers here
        self.local_endpoints: dict[str, Any] = {}
        #: set when new deliveries were queued by this node, to wake its workers
        self.deliveries_queued = asyncio.Event()

    def adapter(self, scheme: str) -> Adapter:
        adapter = self._adapters.get(scheme)
        if adapter is None:
            adapter = registry.adapter_class(scheme)(self)
            self._adapters[scheme] = adapter
        return adapter

    def endpoint(self, raw: str) -> tuple[Adapter, Endpoint]:
        uri = parse_uri(raw)
        adapter = self.adapter(uri.scheme)
        return adapter, adapter.endpoint(uri)

    def stored_destination(self, uri: str) -> str:
        """The form of ``uri`` a queued delivery keeps in the journal: passwords redacted, remembered here."""
        shown = redact(uri)
        if shown != uri and self._secret_destinations.setdefault(shown, uri) != uri:
            raise ComponentError(
                f"'{shown}' is sent to with two different passwords; the journal keeps destinations without "
                "their passwords, so give each endpoint one credential (or tell them apart by another option)"
            )
        return shown

    def real_destination(self, stored: str) -> str:
        """The URI to send a journalled delivery to (see :meth:`stored_destination`)."""
        real = self._secret_destinations.get(stored)
        if real is not None:
            return real
        if "***" in stored and redact(stored) == stored:  # the cheap test first: this runs per delivery
            # Transient: a node whose route files lag behind the one that queued the row.
            raise DeliveryError(
                f"no route on this node sends to '{stored}': the journal does not keep its password "
                "(load the route that names it, or resend the delivery with 'esb deadletter')"
            )
        return stored

    def producer(self, raw: str) -> Producer:
        producer = self._producers.get(raw)
        if producer is None:
            adapter, endpoint = self.endpoint(raw)
            producer = adapter.producer(endpoint)
            self._producers[raw] = producer
        return producer

    def service(self, name: str) -> Service:
        service = self._services.get(name)
        if service is None:
            service = registry.service_class(name)(self)
            self._services[name] = service
        return service

    def known_service(self, name: str) -> Service:
        if name not in self._services:
            raise UnknownServiceError(f"service '{name}' was not started")
        return self._services[name]

    @property
    def services(self) -> dict[str, Service]:
        return dict(self._services)

    async def close(self) -> None:
        for producer in self._producers.values():
            await producer.close()
        self._producers.clear()
        for service in self._services.values():
            await service.stop()
        await self.http.close()
