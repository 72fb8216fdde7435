"""The sending side: a persistent SEND whose RECEIPT is awaited before the delivery counts as done.

A receipt means the broker took the message (for a persistent message on a
durable queue, RabbitMQ and ActiveMQ answer after writing it). Without one
within ``receipt_timeout`` the send raises, the journal's delivery retry
sends it again later, and the next hop sees the same ``esb-message-id``
(the delivery id, equal on every retry of one delivery) and drops the repeat.

One connection per endpoint, opened on the first send and again after it
dropped; sends of several delivery workers share it (one writer thread,
receipts told apart by id).
"""

from __future__ import annotations

import asyncio

from adapters.stomp.connection import Link, LinkError
from adapters.stomp.options import StompOptions
from esb.components import Producer
from esb.exchange import Exchange

#: header with the id the next hop deduplicates on (our consumer's default ``dedup_header``)
MESSAGE_ID_HEADER = "esb-message-id"
#: STOMP headers that belong to a frame, a subscription or the broker, never forwarded from
#: an inbound ``stomp-NAME`` header (a message from queue A must not claim A's delivery ids on B)
NOT_FORWARDED = frozenset(
    {
        "destination", "message-id", "subscription", "ack", "redelivered", "content-length", "receipt",
        "receipt-id", "transaction", "persistent", "id", "host", "login", "passcode", "session", "server",
        "version", "heart-beat", "durable", "auto-delete", "exclusive", "prefetch-count", "selector",
        "activemq.subscriptionName", "activemq.prefetchSize", MESSAGE_ID_HEADER,
    }
)  # fmt: skip


def outbound_headers(exchange: Exchange, options: StompOptions) -> dict[str, str]:
    """The SEND headers for an exchange: forwarded ``stomp-*`` and chosen headers, ours last."""
    headers: dict[str, str] = {}
    for name, value in exchange.headers.items():
        if name.startswith("stomp-") and name[6:] not in NOT_FORWARDED:
            headers[name[6:]] = value
    for name in options.forward_headers:  # stomp-NAME ones were forwarded above (or must not be)
        if name in exchange.headers and name not in NOT_FORWARDED and not name.startswith("stomp-"):
            headers[name] = exchange.headers[name]
    content_type = options.content_type or exchange.headers.get("content-type")
    if content_type:
        headers["content-type"] = content_type
    if options.persistent:
        headers["persistent"] = "true"
    headers[MESSAGE_ID_HEADER] = exchange.headers.get("esb-delivery-id") or exchange.id
    return headers


class StompProducer(Producer):
    def __init__(self, options: StompOptions) -> None:
        self.options = options
        # Connecting and the receipt each have their own limit; the worker's is the sum, with slack.
        self.send_timeout = float(options.connect_timeout + options.receipt_timeout) + 5.0
        self._link: Link | None = None
        self._lock: asyncio.Lock | None = None

    async def _connected(self) -> Link:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            link = self._link
            if link is None or link.closed.is_set():
                if link is not None:
                    await link.close()
                link = Link(self.options, name="producer")
                await link.open()
                self._link = link
            return link

    async def send(self, exchange: Exchange) -> Exchange | None:
        link = await self._connected()
        try:
            await link.send(
                self.options.destination,
                exchange.body,
                outbound_headers(exchange, self.options),
                float(self.options.receipt_timeout),
            )
        except LinkError:
            if not link.closed.is_set():
                # No receipt on a live connection: the broker may be stuck; start afresh next time.
                await link.close(grace=0)
            raise
        return None

    async def close(self) -> None:
        if self._link is not None:
            await self._link.close()
            self._link = None
