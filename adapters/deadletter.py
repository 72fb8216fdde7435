"""``dead-letter:NAME``: park a failed message for an admin (``esb deadletter``).

Used in ``on_error``. Nothing is sent: the journal stores the delivery as
``dead`` at once with the error; ``esb deadletter retry`` runs the message
through its route again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from esb.components import Adapter, Endpoint, Producer
from esb.errors import PermanentDeliveryError
from esb.exchange import Exchange
from esb.uri import EndpointUri


@dataclass(frozen=True, kw_only=True)
class DeadLetterOptions:
    name: str = field(default="default", metadata={"doc": "Name of the dead-letter queue."})


class _Parked(Producer):
    async def send(self, exchange: Exchange) -> Exchange | None:
        raise PermanentDeliveryError("dead-letter: is a parking place; use 'esb deadletter retry'")


class DeadLetterAdapter(Adapter):
    scheme = "dead-letter"
    Options: ClassVar[type[Any]] = DeadLetterOptions
    summary = "Park failed messages for 'esb deadletter list|retry|drop'."

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        return {"name": uri.path.strip("/") or "default"}

    def producer(self, endpoint: Endpoint) -> Producer:
        return _Parked()
