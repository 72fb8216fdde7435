"""MLLP test helpers: messages, a python-hl7 client, and transforms that route files name."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from hl7.mllp import open_hl7_connection

from esb.errors import Hl7Error
from esb.exchange import Exchange
from esb.runtime.engine import Engine
from tests.conftest import write_routes
from transforms.hl7v2 import Ack, parse_message, read_ack, read_header

SB, EB, CR = b"\x0b", b"\x1c", b"\r"


def adt(
    control_id: str,
    *,
    trigger: str = "A01",
    family: str = "Zhang",
    given: str = "San",
    app: str = "HIS",
    facility: str = "HOSP",
    charset: str = "",
    codec: str = "utf-8",
    version: str = "2.5",
    accept: str = "",
    application: str = "",
) -> bytes:
    """An ADT message; MSH-15/16 make it enhanced mode, MSH-18 names its charset."""
    msh = (
        f"MSH|^~\\&|{app}|{facility}|EMPI|REGION|20261129120000||ADT^{trigger}^ADT_A01|{control_id}|P|{version}"
        f"|||{accept}|{application}||{charset}"
    ).rstrip("|")
    segments = [
        msh,
        f"EVN|{trigger}|20261129120000",
        f"PID|1||MRN-{control_id}^^^{facility}^MR||{family}^{given}||19800101|M",
        "PV1|1|O",
    ]
    return ("\r".join(segments) + "\r").encode(codec)


class Client:
    """One MLLP connection through python-hl7's asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, **kwargs: object) -> Client:
        reader, writer = await open_hl7_connection("127.0.0.1", port, **kwargs)
        return cls(reader, writer)

    async def send(self, message: bytes) -> None:
        self.writer.writeblock(message)  # type: ignore[attr-defined]
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self, timeout: float = 10.0) -> bytes:
        async with asyncio.timeout(timeout):
            block: bytes = await self.reader.readblock()  # type: ignore[attr-defined]
            return block

    async def ack(self, timeout: float = 10.0, codec: str = "utf-8") -> Ack:
        return read_ack(await self.receive(timeout), codec)

    async def call(self, message: bytes, timeout: float = 10.0) -> Ack:
        await self.send(message)
        return await self.ack(timeout)

    async def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True once the server has closed the connection (EOF)."""
        async with asyncio.timeout(timeout):
            return await self.reader.read(1) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def connect(port: int, **kwargs: object) -> AsyncIterator[Client]:
    client = await Client.open(port, **kwargs)
    try:
        yield client
    finally:
        await client.close()


def mllp_route(
    tmp_path: Path, query: str = "", steps: str = "- log: {message: got it}", on_error: str = "", rid: str = "r"
) -> None:
    """Route ``rid`` listening on a free port with the given options and steps."""
    text = f"route:\n  id: {rid}\n  from: mllp://127.0.0.1:0?{query}\n  steps:\n"
    text += "".join(f"    {line}\n" for line in steps.splitlines())
    if on_error:
        text += "  on_error:\n" + "".join(f"    {line}\n" for line in on_error.splitlines())
    write_routes(tmp_path / "routes", {})
    (tmp_path / "routes" / f"{rid}.yaml").write_text(text, encoding="utf-8")


def port_of(engine: Engine, route_id: str = "r") -> int:
    consumer = engine.routes[route_id].consumer
    return int(consumer.port)  # type: ignore[union-attr]


# -- transforms named by the route files of the tests ---------------------------------------

EVENTS: list[tuple[str, str, float]] = []


def service_reply(exchange: Exchange) -> bytes:
    """Stands for a service that answers with its own ACK: MSA-3 echoes the patient's name (PID-5)."""
    header = read_header(exchange.body, exchange.headers.get("charset", "utf-8"))
    message = parse_message(exchange.body, header.codec)
    name = str(message.segment("PID")(5))
    ack = (
        f"MSH|^~\\&|EMPI|REGION|{header.sending_application}|{header.sending_facility}|20261129120000||"
        f"ACK^{header.trigger_event}^ACK|R-{header.control_id}|P|{header.version}||||||{header.charset}\r"
        f"MSA|AA|{header.control_id}|{name}\r"
    )
    return ack.encode(header.codec)


def reject_pid(exchange: Exchange) -> None:
    raise Hl7Error("PID-3 needs an assigning authority", error_code="101", location="PID^1^3^1^4", ack_code="AR")


def boom(exchange: Exchange) -> None:
    raise RuntimeError("transform exploded")


async def record_slowly(exchange: Exchange) -> None:
    """Logs start and end per message; every other message takes a while (to expose overlap)."""
    control_id = exchange.headers["hl7-control-id"]
    EVENTS.append(("start", control_id, time.monotonic()))
    await asyncio.sleep(0.05 if int(control_id.rsplit("-", 1)[1]) % 2 == 0 else 0.0)
    EVENTS.append(("end", control_id, time.monotonic()))
