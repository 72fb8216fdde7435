"""One broker connection (stomp.py 9), bridged into the engine's asyncio loop.

stomp.py is threaded: a receiver thread reads frames and calls listener
methods, and sending writes to the socket from the calling thread. So:

- every frame the receiver thread sees crosses into the loop at once
  (``call_soon_threadsafe``, or ``run_coroutine_threadsafe`` for messages,
  see :mod:`adapters.stomp.consumer`); nothing of ours runs in that thread;
- every frame we send (CONNECT, SUBSCRIBE, SEND, ACK, NACK) is written by one
  worker thread per connection, so a slow broker socket never blocks the loop
  and frames leave in the order they were asked for.

A :class:`Link` is used for one connection only: after it dropped, the owner
makes a new one (stomp.py's own reconnect loop sleeps in the caller's thread
and knows nothing of our failover and backoff policy, so it is switched off:
one pass over the brokers per :meth:`Link.open`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import stomp

from adapters.stomp.options import StompOptions
from esb.errors import DeliveryError

log = logging.getLogger("esb.adapters.stomp")

T = TypeVar("T")


class LinkError(DeliveryError):
    """The broker cannot be reached, refused us, or dropped the connection (retried)."""


@dataclass(frozen=True)
class Received:
    """A MESSAGE frame, copied out of stomp.py's frame in the receiver thread."""

    headers: dict[str, str]
    body: bytes


class _Listener(stomp.ConnectionListener):  # type: ignore[misc]
    """Runs in stomp.py's receiver thread: hands every event to the loop, does nothing else."""

    def __init__(self, link: Link) -> None:
        self.link = link

    def on_connected(self, frame: Any) -> None:
        self.link.soon(self.link._on_connected, dict(frame.headers))

    def on_message(self, frame: Any) -> None:
        self.link.deliver(Received(dict(frame.headers), bytes(frame.body or b"")))

    def on_receipt(self, frame: Any) -> None:
        self.link.soon(self.link._on_receipt, frame.headers.get("receipt-id", ""))

    def on_error(self, frame: Any) -> None:
        detail = bytes(frame.body or b"")[:200].decode("utf-8", "replace").strip().split("\n")[0]
        self.link.soon(self.link._on_error, dict(frame.headers), detail)

    def on_disconnected(self) -> None:
        self.link.soon(self.link._on_disconnected)


class Link:
    """One STOMP 1.2 connection to the first reachable broker of the endpoint's list."""

    def __init__(
        self,
        options: StompOptions,
        *,
        name: str,
        on_message: Callable[[Link, Received], None] | None = None,
    ) -> None:
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.where = options.where
        #: set in the loop once the connection is gone (dropped by either side or never made)
        self.closed = asyncio.Event()
        #: the broker's CONNECTED 'server' header, e.g. RabbitMQ/3.10.8 or ActiveMQ/5.17.6
        self.server = ""
        self._on_message = on_message
        self._connected: asyncio.Future[None] = self.loop.create_future()
        self._receipts: dict[str, asyncio.Future[None]] = {}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stomp-{name}")
        self._shut = False
        beat = int(options.heartbeat * 1000)
        self._conn = stomp.Connection12(
            host_and_ports=options.brokers,
            prefer_localhost=False,  # keep the failover order as written
            try_loopback_connect=False,
            reconnect_sleep_initial=0.0,
            reconnect_attempts_max=1,  # one pass over the brokers; the owner does backoff
            timeout=float(options.connect_timeout),
            heartbeats=(beat, beat),
            vhost=options.vhost or None,
            auto_decode=False,
        )
        if options.tls:
            self._conn.set_ssl(
                for_hosts=options.brokers,
                cert_file=options.certfile,
                key_file=options.keyfile,
                ca_certs=options.cafile,
                verify=options.verify,
            )
        self._conn.set_listener("esb", _Listener(self))

    @property
    def broker(self) -> str:
        """The broker product as CONNECTED named it (rabbitmq, activemq, ...), lower case."""
        return self.server.split("/", 1)[0].lower()

    # -- called from stomp.py's threads -------------------------------------------------

    def soon(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the loop is closed: the engine is gone, and so is whoever cared

    def deliver(self, message: Received) -> None:
        if self._on_message is not None:
            self._on_message(self, message)

    # -- the loop's side of the events ---------------------------------------------------

    def _on_connected(self, headers: dict[str, str]) -> None:
        self.server = headers.get("server", "")
        if not self._connected.done():
            self._connected.set_result(None)

    def _on_receipt(self, receipt_id: str) -> None:
        waiter = self._receipts.pop(receipt_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_error(self, headers: dict[str, str], detail: str = "") -> None:
        """An ERROR frame; its text is the broker's (no message content), safe to log."""
        said = headers.get("message", "no message") + (f" ({detail})" if detail else "")
        error = LinkError(f"{self.where}: the broker answered ERROR: {said}")
        if not self._connected.done():
            self._refuse(error)
            return
        log.warning("%s: the broker answered ERROR: %s", self.where, said)
        waiter = self._receipts.pop(headers.get("receipt-id", ""), None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_exception(error)
            return
        # An ERROR that names no receipt may concern any frame in flight; brokers close the
        # connection after it (STOMP 1.2), so fail what waits now and let the owner reconnect.
        self._fail_all(error)
        if not self._shut:
            self._writer.submit(self._drop)

    def _on_disconnected(self) -> None:
        self._fail_all(LinkError(f"{self.where}: the broker connection was lost"))

    def _refuse(self, error: LinkError) -> None:
        self._connected.set_exception(error)
        self._connected.exception()  # retrieved: nobody may be waiting (a failed connect, a close)

    def _fail_all(self, error: LinkError) -> None:
        self.closed.set()
        if not self._connected.done():
            self._refuse(error)
        waiters, self._receipts = self._receipts, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(error)

    # -- operations, each awaited in the loop -------------------------------------------

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a stomp.py call in the writer thread; whatever it raises becomes a :class:`LinkError`.

        stomp.py raises its own exceptions, socket errors, and on a TLS connection that
        just closed even AttributeError (its send queue is gone): all mean "not written".
        """

        def call() -> T:
            try:
                return fn(*args)
            except Exception as exc:
                raise LinkError(f"{self.where}: cannot write to the broker ({type(exc).__name__})") from exc

        try:
            return await self.loop.run_in_executor(self._writer, call)
        except RuntimeError as exc:  # the writer was shut down: this link is closed
            raise LinkError(f"{self.where}: the connection was closed") from exc

    async def open(self, connect_headers: dict[str, str] | None = None) -> None:
        """Connect to the first broker that answers; raises :class:`LinkError`."""
        o = self.options
        try:
            await self._write(self._conn.connect, o.login, o.passcode, False, dict(connect_headers or {}))
        except LinkError as exc:
            self._fail_all(LinkError(f"{self.where}: cannot connect"))
            cause = type(exc.__cause__).__name__
            raise LinkError(f"{self.where}: cannot connect to {self._brokers()} ({cause})") from None
        try:
            async with asyncio.timeout(float(o.connect_timeout)):
                await asyncio.shield(self._connected)
        except TimeoutError:
            await self.close()
            raise LinkError(f"{self.where}: no CONNECTED frame within {o.connect_timeout:g}s") from None
        except LinkError:
            await self.close()
            raise

    def _brokers(self) -> str:
        return ", ".join(f"{host}:{port}" for host, port in self.options.brokers)

    async def request(self, fn: Callable[..., None], *args: Any, headers: dict[str, str], timeout: float) -> None:
        """Send a frame with a receipt header and wait for the broker's RECEIPT."""
        if self.closed.is_set():
            raise LinkError(f"{self.where}: the broker connection was lost")
        receipt = uuid.uuid4().hex
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._receipts[receipt] = waiter
        try:
            await self._write(fn, *args, {**headers, "receipt": receipt})
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            raise LinkError(f"{self.where}: no RECEIPT within {timeout:g}s") from None
        finally:
            self._receipts.pop(receipt, None)

    async def send(self, destination: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
        await self.request(self._conn.send, destination, body, None, headers=headers, timeout=timeout)

    async def subscribe(self, destination: str, subscription: str, headers: dict[str, str]) -> None:
        await self.request(
            self._conn.subscribe,
            destination,
            subscription,
            "client-individual",
            headers=headers,
            timeout=float(self.options.connect_timeout),
        )

    async def unsubscribe(self, subscription: str) -> None:
        """Stop deliveries (a durable subscription stays); best effort."""
        await self.quietly(self._conn.unsubscribe, subscription)

    async def ack(self, ack_id: str) -> bool:
        return await self.quietly(self._conn.ack, ack_id)

    async def nack(self, ack_id: str) -> bool:
        return await self.quietly(self._conn.nack, ack_id)

    async def quietly(self, fn: Callable[..., None], *args: Any) -> bool:
        """Write a frame that needs no answer; False when the connection is gone (the broker redelivers)."""
        if self.closed.is_set():
            return False
        try:
            await self._write(fn, *args)
        except LinkError as exc:
            log.debug("%s: could not write %s: %s", self.where, getattr(fn, "__name__", "frame"), exc)
            return False
        return True

    def _drop(self) -> None:
        """Close the socket at once (in the writer thread): no DISCONNECT handshake."""
        try:
            self._conn.transport.disconnect_socket()
        except Exception as exc:  # stomp.py's own, OSError, or a TLS teardown error: closed either way
            log.debug("%s: closing the socket: %s", self.where, exc)

    async def close(self, grace: float = 2.0) -> None:
        """DISCONNECT (with its receipt, so frames written before are taken), then close the socket."""
        if self._shut:
            return
        if not self.closed.is_set() and self._conn.is_connected():
            await self.quietly(self._conn.disconnect)
            try:
                async with asyncio.timeout(grace):
                    await self.closed.wait()
            except TimeoutError:
                pass
        self._shut = True
        await self._write(self._drop)
        self._fail_all(LinkError(f"{self.where}: the connection was closed"))
        self._writer.shutdown(wait=False)
