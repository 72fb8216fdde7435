"""``service:echo/echo``: answers with the request; the bus's ping for probes and examples."""

from __future__ import annotations

from typing import ClassVar

from esb.components import Service
from esb.exchange import Exchange


class EchoService(Service):
    operations: ClassVar[tuple[str, ...]] = ("echo",)

    async def call(self, operation: str, exchange: Exchange) -> Exchange | None:
        reply = exchange.copy()
        reply.headers["esb-echo"] = "true"
        return reply
