"""The receiving side: a client-individual subscription, ACKed only once the engine holds the message.

Each MESSAGE frame is copied out of stomp.py's receiver thread and handed to
the route on the engine's loop (``run_coroutine_threadsafe``). Its ACK is
written only after the outcome says the engine holds it: journaled
(``accepted``), run (``processed``, ``filtered``, ``failed`` with a message
id) or already held (``duplicate``). A message the engine did not take
(``failed`` without a message id: the engine is stopping, the journal is
down) is handed back after a pause, so the broker hands it out again; the
pause grows like the reconnect backoff, so a journal outage does not become a
redelivery storm. On RabbitMQ it is NACKed (requeued). Anywhere else the
connection is closed and opened again instead: ActiveMQ moves a NACKed
message to ``ActiveMQ.DLQ`` at once unless the broker has a redelivery plugin
(seen with ActiveMQ 5.17), while every broker hands the unacknowledged
messages of a closed connection out again.

When the connection drops, unacknowledged messages go back to the broker's
queue and come again after we reconnect (with backoff, over the failover
list), possibly after the journal took them: the sender's stable id
(``dedup_header``) becomes the exchange's ``DEDUP_KEY``, and the journal
answers such a repeat ``duplicate`` instead of running it twice.
"""

from __future__ import annotations

import asyncio
import logging
from email.message import Message

from adapters.stomp.connection import Link, LinkError, Received
from adapters.stomp.options import StompOptions
from esb.components import Consumer, Handler, Outcome
from esb.exchange import DEDUP_KEY, Exchange

log = logging.getLogger("esb.adapters.stomp")

#: frame headers that say nothing about the message (framing, our own acknowledgement id)
SKIPPED = frozenset({"content-length", "ack"})


def charset_of(content_type: str) -> str | None:
    """The charset parameter of a content-type, if any (``text/plain; charset=GB18030`` -> ``GB18030``)."""
    message = Message()
    message["content-type"] = content_type
    value = message.get_param("charset")
    return value if isinstance(value, str) and value else None


def dedup_key(headers: dict[str, str], header: str, broker: str) -> str | None:
    """The sender's stable message id, or None when the message carries none we can trust.

    RabbitMQ's own ``message-id`` names one delivery and changes on redelivery, so it is
    no key; ActiveMQ's is the JMSMessageID, the same on every redelivery.
    """
    if not header:
        return None
    for name in (header, "amqp-message-id"):
        if headers.get(name):
            return f"{name}:{headers[name]}"
    if broker == "activemq" and headers.get("message-id"):
        return f"message-id:{headers['message-id']}"
    return None


def to_exchange(message: Received, options: StompOptions, broker: str) -> Exchange:
    """Frame headers become ``stomp-NAME`` headers; content-type and its charset are kept as such too."""
    headers = {f"stomp-{name}": value for name, value in message.headers.items() if name not in SKIPPED}
    # RabbitMQ says redelivered:false on a first delivery, ActiveMQ says nothing: the same to a route
    headers.setdefault("stomp-redelivered", "false")
    content_type = message.headers.get("content-type")
    if content_type:
        headers["content-type"] = content_type
        charset = charset_of(content_type)
        if charset:
            headers["charset"] = charset
    exchange = Exchange(body=message.body, headers=headers)
    key = dedup_key(message.headers, options.dedup_header, broker)
    if key is not None:
        exchange.properties[DEDUP_KEY] = key
    return exchange


class StompConsumer(Consumer):
    def __init__(self, options: StompOptions, handler: Handler, route_id: str, shutdown_timeout: float = 5.0) -> None:
        self.options = options
        self.handler = handler
        self.route_id = route_id
        self.shutdown_timeout = shutdown_timeout
        self.subscription = options.subscription or f"esb-{route_id}"
        self.client_id = options.client_id or f"esb-{route_id}"
        #: counters for tests and metrics: messages ACKed, handed back (of them NACKed), and connections made
        self.acked = 0
        self.handed_back = 0
        self.nacked = 0
        self.connections = 0
        #: the link was closed on purpose, to hand its unacknowledged messages back (not a lost connection)
        self._handing_back = False
        self.link: Link | None = None
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(options.prefetch)
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._refusals = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect in the background: a broker that is down must not keep the engine from starting."""
        self._task = asyncio.create_task(self._run(), name=f"stomp-{self.route_id}")

    async def stop(self) -> None:
        self._stopping.set()
        link = self.link
        if link is not None:
            await link.unsubscribe(self.subscription)  # no more deliveries; a durable subscription stays
        try:
            async with asyncio.timeout(self.shutdown_timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("route %s: %d STOMP messages still in the route at shutdown; the broker redelivers them",
                        self.route_id, self._busy)  # fmt: skip
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.link is not None:
            await self.link.close()
            self.link = None

    # -- connection ------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        o = self.options
        return float(min(o.reconnect_max, o.reconnect_delay * 2 ** max(0, failures - 1)))

    async def _sleep(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            link = self.link = Link(self.options, name=self.route_id, on_message=self._on_message)
            try:
                await self._connect(link)
            except LinkError as exc:
                failures += 1
                delay = self._backoff(failures)
                if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th... failure: not every attempt
                    log.warning("route %s: %s; attempt %d, next in %gs", self.route_id, exc, failures, delay)
                await self._sleep(delay)
                continue
            if failures:
                log.info("route %s: connected to the broker again after %d failed attempts", self.route_id, failures)
            failures = 0
            self.connections += 1
            waits = [asyncio.ensure_future(link.closed.wait()), asyncio.ensure_future(self._stopping.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            if self._stopping.is_set():
                return
            if self._handing_back:
                log.info("route %s: reconnecting to %s, so the broker hands the messages not taken out again",
                         self.route_id, self.options.where)  # fmt: skip
                self._handing_back = False
            else:
                log.warning("route %s: lost the connection to %s; reconnecting", self.route_id, self.options.where)
            await link.close()
            failures = 1
            await self._sleep(self._backoff(failures))

    async def _connect(self, link: Link) -> None:
        o = self.options
        try:
            await link.open({"client-id": self.client_id} if o.durable else {})
            headers = {"prefetch-count": str(o.prefetch), "activemq.prefetchSize": str(o.prefetch)}
            if o.durable:
                # RabbitMQ keeps a durable, not auto-deleted queue named after destination and id;
                # ActiveMQ a durable subscriber named by client-id + activemq.subscriptionName.
                headers.update({"durable": "true", "auto-delete": "false"})
                headers["activemq.subscriptionName"] = self.subscription
            if o.selector:
                headers["selector"] = o.selector
                if link.broker == "rabbitmq":
                    log.warning("route %s: RabbitMQ ignores selectors; every message of %s comes",
                                self.route_id, o.destination)  # fmt: skip
            await link.subscribe(o.destination, self.subscription, headers)
        except LinkError:
            await link.close()
            raise

    # -- messages --------------------------------------------------------------------

    def _on_message(self, link: Link, message: Received) -> None:
        """In stomp.py's receiver thread: hand the frame to the loop, nothing else."""
        try:
            asyncio.run_coroutine_threadsafe(self._take(link, message), link.loop)
        except RuntimeError:
            pass  # the loop is closed; unacknowledged, the message stays with the broker

    async def _take(self, link: Link, message: Received) -> None:
        ack_id = message.headers.get("ack") or message.headers.get("message-id", "")
        self._busy += 1
        self._idle.clear()
        try:
            async with self._slots:
                if link.closed.is_set():
                    return  # its connection is gone: the broker hands it out again
                outcome = await self._hand_over(link, message)
                if outcome.status == "failed" and outcome.message_id is None:
                    await self._give_back(link, ack_id, outcome)
                    return
                self._refusals = 0
                if await link.ack(ack_id):
                    self.acked += 1
        except Exception as exc:  # a bug of ours: nothing else would see it (run_coroutine_threadsafe's future)
            log.error("route %s: handling a STOMP message failed: %s", self.route_id, type(exc).__name__)
            log.debug("route %s: STOMP message handling error", self.route_id, exc_info=True)
        finally:
            self._busy -= 1
            if not self._busy:
                self._idle.set()

    async def _hand_over(self, link: Link, message: Received) -> Outcome:
        try:
            exchange = to_exchange(message, self.options, link.broker)
            return await self.handler(exchange, self.options.wait)
        except Exception as exc:
            return Outcome(None, "failed", error=exc)

    async def _give_back(self, link: Link, ack_id: str, outcome: Outcome) -> None:
        """The engine does not hold it: after a pause, hand it back so the broker redelivers it later."""
        self._refusals += 1
        if not self._stopping.is_set():  # while stopping, every message in flight comes here: no noise
            log.warning("route %s: a message was not taken (%s); handing it back to the broker",
                        self.route_id, type(outcome.error).__name__)  # fmt: skip
            await self._sleep(self._backoff(self._refusals))
        if link.broker == "rabbitmq":
            if await link.nack(ack_id):
                self.nacked += 1
                self.handed_back += 1
            return
        # Not NACKed (see the module doc): left unacknowledged on a connection that is closed now.
        if not link.closed.is_set():
            self._handing_back = True
            await link.close()
        self.handed_back += 1
