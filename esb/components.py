"""The contracts between the routing core and its plug-ins.

Camel's component -> endpoint -> consumer/producer, in Python: an
:class:`Adapter` is registered for a URI scheme; for a concrete URI it builds a
:class:`Consumer` (messages come in) or a :class:`Producer` (messages go out).
A :class:`Service` is an actor hosted on the bus (EMPI, XDS registry) reached
with ``to: service:NAME/OPERATION``. Nothing here knows about any one protocol.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from esb.exchange import Exchange
from esb.uri import EndpointUri, build_options

if TYPE_CHECKING:
    from esb.runtime.context import EngineContext


@dataclass(frozen=True, kw_only=True)
class NoOptions:
    """For adapters that take no options."""


@dataclass
class Outcome:
    """What the engine tells a consumer after it took a message.

    ``status`` is ``accepted`` (journaled; the route runs on), ``processed``
    (the route completed; ``exchange`` is the final message), ``filtered``
    or ``failed`` (``error`` says why; data already accepted is kept), or
    ``duplicate``: the route holds a message with the exchange's
    ``DEDUP_KEY`` already (``message_id``); nothing was journaled or run,
    and the consumer counts it as taken.
    """

    message_id: str | None
    status: Literal["accepted", "processed", "filtered", "failed", "duplicate"]
    exchange: Exchange | None = None
    error: BaseException | None = None
    #: a protocol reply prepared by on_error (e.g. {"code": "AE"}), for the adapter
    reply: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: for ``accepted``: completes with the route's outcome (shield it before awaiting),
    #: so a consumer can keep a connection's messages in order (MLLP ``ordered``)
    done: asyncio.Future[Outcome] | None = None


#: The engine's entry point for a consumer: hand over one exchange, get the outcome.
#: ``wait`` says whether to return after the journal commit (False) or after the
#: route completed (True).
Handler = Callable[[Exchange, bool], Awaitable[Outcome]]


@dataclass(frozen=True)
class Endpoint:
    """A URI bound to its adapter with typed options."""

    uri: EndpointUri
    options: Any

    @property
    def raw(self) -> str:
        return self.uri.raw


class Consumer(abc.ABC):
    """Receives messages from outside and hands each to the engine."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop taking new messages; in-flight ones are drained by the engine."""


class Producer(abc.ABC):
    """Sends an exchange somewhere; returns the peer's reply when it has one."""

    #: the longest one send may take before the delivery worker counts it failed; a
    #: producer with a ``timeout`` option of its own (a large MTOM upload) sets more
    send_timeout: float = 60.0

    @abc.abstractmethod
    async def send(self, exchange: Exchange) -> Exchange | None: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; most producers have nothing to release."""


class Adapter(abc.ABC):
    """One transport, registered by URI scheme through the ``esb.adapters`` entry point."""

    scheme: ClassVar[str]
    Options: ClassVar[type[Any]] = NoOptions
    #: True when ``to:`` must call the producer in-line (direct:) instead of
    #: queueing a durable delivery; in-line producers' replies replace the body.
    inline: ClassVar[bool] = False
    #: one line for ``esb docs``
    summary: ClassVar[str] = ""

    def __init__(self, context: EngineContext) -> None:
        self.context = context

    def endpoint(self, uri: EndpointUri) -> Endpoint:
        """Bind a URI to typed options; raises ``UriError`` with what is allowed."""
        values = dict(self.path_options(uri))
        values.update(uri.params)
        return Endpoint(uri, build_options(self.Options, values, where=self.scheme))

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        """Options carried by the URI's authority and path (host, port, path)."""
        return {}

    def listen_key(self, endpoint: Endpoint) -> tuple[Any, ...] | None:
        """What a consumer exclusively holds (a port, a directory), for lint."""
        return None

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        """Extra problems lint should report for this endpoint (empty: fine)."""
        return []

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        raise NotImplementedError(f"{self.scheme}: cannot be used in 'from'")

    def producer(self, endpoint: Endpoint) -> Producer:
        raise NotImplementedError(f"{self.scheme}: cannot be used in 'to'")


class Service(abc.ABC):
    """An actor hosted on the bus, registered through ``esb.services``.

    ``operations`` names what ``service:NAME/OPERATION`` may call, so lint can
    check a route before the engine starts.
    """

    operations: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: EngineContext) -> None:
        self.context = context

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open what the service needs (its tables, caches)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release what start opened."""

    @abc.abstractmethod
    async def call(self, operation: str, exchange: Exchange) -> Exchange | None:
        """Handle one request; the returned exchange becomes the route's message."""
