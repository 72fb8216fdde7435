"""``direct:NAME`` (in-line call of another route) and ``seda:NAME`` (durable hand-off).

``direct:`` runs the other route's steps inside the caller's exchange, like a
function call: its reply becomes the message. ``seda:`` is queued: the
delivery worker hands the message to the other route, which journals it as
its own inbound message, so the hand-off survives a crash on either side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from esb.components import Adapter, Consumer, Endpoint, Handler, Producer
from esb.errors import DeliveryError, PermanentDeliveryError
from esb.exchange import Exchange
from esb.uri import EndpointUri


@dataclass(frozen=True, kw_only=True)
class LocalOptions:
    name: str = field(metadata={"doc": "Endpoint name shared by the 'from' and 'to' sides."})


class _LocalConsumer(Consumer):
    def __init__(self, registry: dict[str, Any], key: str, handler: Handler) -> None:
        self.registry, self.key, self.handler = registry, key, handler

    async def start(self) -> None:
        self.registry[self.key] = self.handler

    async def stop(self) -> None:
        if self.registry.get(self.key) is self.handler:
            del self.registry[self.key]


class _LocalProducer(Producer):
    def __init__(self, registry: dict[str, Any], key: str, wait: bool) -> None:
        self.registry, self.key, self.wait = registry, key, wait

    async def send(self, exchange: Exchange) -> Exchange | None:
        handler: Handler | None = self.registry.get(self.key)
        if handler is None:
            raise DeliveryError(f"no route consumes {self.key} on this node (yet)")
        outcome = await handler(exchange.copy(), self.wait)
        if outcome.status == "failed":
            error = outcome.error or RuntimeError("route failed")
            if self.wait:
                raise PermanentDeliveryError(f"{self.key}: {type(error).__name__}: {error}")
            raise DeliveryError(f"{self.key}: {type(error).__name__}: {error}")
        return outcome.exchange if self.wait else None


class _LocalAdapter(Adapter):
    Options: ClassVar[type[Any]] = LocalOptions

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        return {"name": uri.path.strip("/")}

    def key(self, endpoint: Endpoint) -> str:
        return f"{self.scheme}:{endpoint.options.name}"

    def listen_key(self, endpoint: Endpoint) -> tuple[Any, ...]:
        return (self.key(endpoint),)

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        if not endpoint.options.name:
            return [f"{self.scheme}: needs a name, e.g. {self.scheme}:orders"]
        return []

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        return _LocalConsumer(self.context.local_endpoints, self.key(endpoint), handler)

    def producer(self, endpoint: Endpoint) -> Producer:
        return _LocalProducer(self.context.local_endpoints, self.key(endpoint), wait=self.inline)


class DirectAdapter(_LocalAdapter):
    scheme = "direct"
    inline = True
    summary = "Call another route in-line, in the caller's exchange (synchronous)."


class SedaAdapter(_LocalAdapter):
    scheme = "seda"
    inline = False
    summary = "Hand a message durably to another route (queued, asynchronous)."
