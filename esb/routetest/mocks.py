"""An engine context whose in-line endpoints and services answer from the test.

Routes are compiled against :class:`MockContext` exactly as the engine compiles
them (so an unknown service or a bad URI is still the lint error it would be),
but nothing reaches a peer: queued ``to:`` deliveries are only recorded by the
pipeline itself, and every in-line call (``service:``, ``direct:``, an
``enrich`` target) goes to the running test, which answers from its mocks.
No adapter producer is ever built, so no socket is opened and no file written.
"""

from __future__ import annotations

from typing import Protocol

from esb import registry
from esb.components import Producer, Service
from esb.errors import ConfigError
from esb.exchange import Exchange
from esb.runtime.context import EngineContext
from esb.settings import Settings


class Endpoints(Protocol):
    """What answers in-line calls while one test runs."""

    async def call(self, uri: str, exchange: Exchange) -> Exchange | None: ...


class MockContext(EngineContext):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, journal=None)
        #: set by the runner for the duration of one test
        self.session: Endpoints | None = None
        self._mocked: dict[str, Service] = {}

    def active(self) -> Endpoints:
        if self.session is None:
            raise ConfigError("an in-line endpoint was called outside a route test")
        return self.session

    def service(self, name: str) -> Service:
        service = self._mocked.get(name)
        if service is None:
            real = registry.service_class(name)  # an unknown name fails here, as in the engine
            # A subclass per service keeps the real 'operations', so lint checks them.
            mock_class = type(f"Mock{real.__name__}", (MockService,), {"operations": real.operations})
            service = mock_class(self, name)
            self._mocked[name] = service
        return service

    def producer(self, raw: str) -> Producer:
        return MockProducer(self, raw)


class MockService(Service):
    def __init__(self, context: MockContext, name: str) -> None:
        super().__init__(context)
        self.mock_context = context
        self.name = name

    async def call(self, operation: str, exchange: Exchange) -> Exchange | None:
        return await self.mock_context.active().call(f"service:{self.name}/{operation}", exchange)


class MockProducer(Producer):
    def __init__(self, context: MockContext, raw: str) -> None:
        self.context = context
        self.raw = raw

    async def send(self, exchange: Exchange) -> Exchange | None:
        return await self.context.active().call(self.raw, exchange)
