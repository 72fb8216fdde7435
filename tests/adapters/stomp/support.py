"""A plain stomp.py client for the tests (the other side of our adapter), and RabbitMQ's control tool.

The client is synchronous (stomp.py's own threads); tests call it through
``asyncio.to_thread`` so the engine under test keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import stomp

ENV = "ESB_TEST_STOMP_URL"


@dataclass(frozen=True)
class Broker:
    """Where the test broker is, from ESB_TEST_STOMP_URL (stomp://guest:guest@127.0.0.1:61613)."""

    host: str
    port: int
    login: str
    passcode: str

    @classmethod
    def from_url(cls, url: str) -> Broker:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 61613,
                   unquote(parts.username or "guest"), unquote(parts.password or "guest"))  # fmt: skip

    def uri(self, destination: str, **options: Any) -> str:
        """An endpoint URI for our adapter, credentials in the userinfo."""
        query = "&".join(f"{key}={value}" for key, value in options.items())
        base = f"stomp://{self.login}:{self.passcode}@{self.host}:{self.port}{destination}"
        return f"{base}?{query}" if query else base

    def reachable(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False


def require_broker() -> Broker:
    """The broker named by ESB_TEST_STOMP_URL; skips when unset, fails when it does not answer."""
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(f"{ENV} is not set")
    broker = Broker.from_url(url)
    if not broker.reachable():
        pytest.fail(f"{ENV}={url} is set but nothing listens on {broker.host}:{broker.port}")
    return broker


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Frame:
    headers: dict[str, str]
    body: bytes


class Client(stomp.ConnectionListener):
    """A test peer: publishes with receipts, subscribes, and collects MESSAGE frames in a queue."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.frames: queue.Queue[Frame] = queue.Queue()
        self._receipts: dict[str, threading.Event] = {}
        self._conn: Any = None
        self.connect()

    def connect(self) -> None:
        self._conn = stomp.Connection12(
            [(self.broker.host, self.broker.port)], try_loopback_connect=False, reconnect_attempts_max=1,
            vhost="/", auto_decode=False,
        )  # fmt: skip
        self._conn.set_listener("test", self)
        self._conn.connect(self.broker.login, self.broker.passcode, wait=True)

    def on_message(self, frame: Any) -> None:
        self.frames.put(Frame(dict(frame.headers), bytes(frame.body or b"")))

    def on_receipt(self, frame: Any) -> None:
        event = self._receipts.get(frame.headers.get("receipt-id", ""))
        if event is not None:
            event.set()

    def publish(self, destination: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        """SEND persistently and wait for the broker's RECEIPT; raises when it does not come."""
        receipt = uuid.uuid4().hex
        event = self._receipts[receipt] = threading.Event()
        sent = {"persistent": "true", **(headers or {}), "receipt": receipt}
        try:
            self._conn.send(destination, body, headers=sent)
            if not event.wait(10.0):
                raise TimeoutError(f"no receipt for a SEND to {destination}")
        finally:
            self._receipts.pop(receipt, None)

    def publish_steadily(self, destination: str, body: bytes, headers: dict[str, str], deadline: float) -> int:
        """Publish one message until the broker took it, reconnecting across an outage; returns the tries.

        A try whose receipt was lost may have reached the broker: the queue then holds the
        message twice, with the same headers (the case a consumer's dedup is for).
        """
        tries = 0
        while True:
            tries += 1
            try:
                if not self._conn.is_connected():
                    self.connect()
                self.publish(destination, body, headers)
                return tries
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self.close()
                time.sleep(0.2)

    def subscribe(self, destination: str, sub_id: str, ack: str = "auto", **headers: str) -> None:
        """SUBSCRIBE and wait for its receipt, so nothing sent after this call is missed."""
        receipt = uuid.uuid4().hex
        event = self._receipts[receipt] = threading.Event()
        try:
            self._conn.subscribe(destination, sub_id, ack=ack, headers={**headers, "receipt": receipt})
            if not event.wait(10.0):
                raise TimeoutError(f"no receipt for a SUBSCRIBE to {destination}")
        finally:
            self._receipts.pop(receipt, None)

    def drop_durable(self, topic: str, sub_id: str) -> None:
        """End a durable subscription for good (RabbitMQ deletes its queue): take it over, then
        UNSUBSCRIBE with durable:true."""
        self.subscribe(topic, sub_id, ack="client-individual", durable="true", **{"auto-delete": "false"})
        self._conn.unsubscribe(sub_id, headers={"durable": "true"})

    def ack(self, frame: Frame) -> None:
        self._conn.ack(frame.headers["ack"])

    def get(self, timeout: float = 10.0) -> Frame:
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no STOMP message within {timeout}s") from None

    def close(self) -> None:
        try:
            if self._conn.is_connected():
                self._conn.disconnect()
        except Exception:
            pass
        try:
            self._conn.transport.disconnect_socket()
        except Exception:
            pass


# -- RabbitMQ's control tool (we are root on the test machine) ---------------------------


def rabbitmqctl(*args: str, timeout: float = 60.0) -> str:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        pytest.fail(f"{ENV} is set but rabbitmqctl is not installed; the test needs it to look into the broker")
    done = subprocess.run([tool, "-q", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def queue_depth(name: str) -> int:
    """Messages in a queue, ready and unacknowledged together."""
    for line in rabbitmqctl("list_queues", "name", "messages", "--no-table-headers").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return int(parts[1])
    return 0


def delete_queues(names: list[str]) -> None:
    """Remove the queues a test made (they are durable: left alone they pile up run after run)."""
    tool = shutil.which("rabbitmqctl")
    if tool is None or not names:
        return
    running = [
        subprocess.Popen([tool, "-q", "delete_queue", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name in names
    ]
    for process in running:
        process.wait(timeout=60)


# -- network stand-ins: a TCP (or TLS) forwarder to the broker, a broker that never answers --------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def start_proxy(broker: Broker, *, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> asyncio.Server:
    """Listen on 127.0.0.1 (with TLS when given a context) and forward every connection to the broker."""

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(broker.host, broker.port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(forward, "127.0.0.1", port, ssl=ssl_context)


async def start_mute_broker() -> asyncio.Server:
    """A STOMP server that answers CONNECT and then takes every frame without a word (no RECEIPT)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while frame := await reader.readuntil(b"\x00"):
                if frame.lstrip(b"\r\n").startswith((b"CONNECT", b"STOMP")):
                    writer.write(b"CONNECTED\nversion:1.2\nserver:Mute/1.0\nheart-beat:0,0\n\n\x00")
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lose_the_first_ack(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the first ACK of the test never reach the broker (the connection drops before it leaves);
    the returned list gets that ACK's id."""
    from adapters.stomp.connection import Link

    real_ack = Link.ack
    dropped: list[str] = []

    async def ack_lost(link: Link, ack_id: str) -> bool:
        if not dropped:
            dropped.append(ack_id)
            await link.close(grace=0)  # as if the network died before the ACK left
            return False
        return await real_ack(link, ack_id)

    monkeypatch.setattr(Link, "ack", ack_lost)
    return dropped
