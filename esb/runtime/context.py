"""What adapters and services get from the engine: settings, journal, shared servers.

One context per engine. Producers are cached per URI so a destination keeps its
connection pool; services are created once and started with the engine.
"""

from __future__ import annotations

import asyncio
from typing import Any

from esb import registry
from esb.components import Adapter, Endpoint, Producer, Service
from esb.errors import UnknownServiceError
from esb.http.hub import HttpHub
from esb.journal import Journal
from esb.metrics import Metrics
from esb.settings import Settings
from esb.uri import parse_uri


class EngineContext:
    def __init__(self, settings: Settings, journal: Journal | None = None) -> None:
        self.settings = settings
        self.journal = journal
        self.metrics = Metrics()
        self.http = HttpHub()
        self._adapters: dict[str, Adapter] = {}
        self._producers: dict[str, Producer] = {}
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
