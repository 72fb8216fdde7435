"""mllp: sender against an MLLP peer written here with python-hl7's asyncio streams, and its configuration."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hl7.mllp import start_hl7_server

from esb.cli import main_group
from esb.errors import AckError, ApplicationRejectError, MllpError, PermanentDeliveryError
from esb.exchange import Exchange
from esb.journal import admin
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.settings import Settings
from tests.adapters.mllp_support import adt, connect, mllp_route, port_of
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for
from tests.tlsutil import Certs, make_certs
from transforms.hl7v2 import ErrorDetail, build_ack, read_header


@dataclass
class Peer:
    """Answers each message per ``script`` (then AA): AA/AE/AR, ``none`` (no answer) or ``AA-close``."""

    script: list[str]
    port: int = 0
    received: list[str] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0

    async def handle(self, reader: Any, writer: Any) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                block = await reader.readblock()
                header = read_header(block)
                self.received.append(header.control_id)
                action = self.script.pop(0) if self.script else "AA"
                await asyncio.sleep(0.01)  # long enough for concurrent senders to overlap
                if action == "none":
                    continue
                code = action.split("-")[0]
                detail = None if code == "AA" else ErrorDetail("204", f"peer says {code}")
                writer.writeblock(build_ack(header, code, detail).encode())
                await writer.drain()
                if action.endswith("-close"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


@pytest.fixture
async def start_peer() -> AsyncIterator[Callable[..., Awaitable[Peer]]]:
    servers: list[asyncio.Server] = []

    async def start(*script: str, ssl_context: ssl.SSLContext | None = None) -> Peer:
        peer = Peer(list(script))
        server = await start_hl7_server(peer.handle, "127.0.0.1", 0, ssl=ssl_context)
        peer.port = int(server.sockets[0].getsockname()[1])
        servers.append(server)
        return peer

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def context(make_settings: Callable[..., Settings]) -> AsyncIterator[EngineContext]:
    ctx = EngineContext(make_settings())
    yield ctx
    await ctx.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def message(control_id: str) -> Exchange:
    return Exchange(body=adt(control_id))


async def test_aa_is_a_reply_and_connections_are_pooled(
    context: EngineContext, start_peer: Callable[..., Awaitable[Peer]]
) -> None:
    peer = await start_peer()
    producer = context.producer(f"mllp://127.0.0.1:{peer.port}?pool=2")
    reply = await producer.send(message("P-1"))
    assert reply is not None and reply.headers["hl7-ack-code"] == "AA" and b"MSA|AA|P-1" in reply.body
    await producer.send(message("P-2"))
    assert peer.connections == 1
    await asyncio.gather(*(producer.send(message(f"P-{n}")) for n in range(3, 9)))
    assert peer.most_open == 2 and sorted(peer.received) == sorted(f"P-{n}" for n in range(1, 9))


async def test_negative_acks_follow_the_policy(
    context: EngineContext, start_peer: Callable[..., Awaitable[Peer]]
) -> None:
    peer = await start_peer("AE", "AR", "AE", "AR", "AE", "CR")
    base = f"mllp://127.0.0.1:{peer.port}"
    with pytest.raises(AckError, match=r"answered AE 204: peer says AE") as retried:
        await context.producer(base).send(message("N-1"))
    assert not isinstance(retried.value, PermanentDeliveryError) and retried.value.ack_code == "AE"
    with pytest.raises(ApplicationRejectError, match="answered AR 204") as dead:
        await context.producer(base).send(message("N-2"))
    assert isinstance(dead.value, PermanentDeliveryError)
    with pytest.raises(ApplicationRejectError):
        await context.producer(f"{base}?on_ae=dead").send(message("N-3"))
    with pytest.raises(AckError) as ar_retried:
        await context.producer(f"{base}?on_ar=retry").send(message("N-4"))
    assert not isinstance(ar_retried.value, PermanentDeliveryError)
    accepted = await context.producer(f"{base}?on_ae=accept").send(message("N-5"))
    assert accepted is not None and accepted.headers["hl7-ack-code"] == "AE"
    with pytest.raises(ApplicationRejectError, match="answered CR"):
        await context.producer(base).send(message("N-6"))


async def test_missing_ack_times_out_and_the_connection_is_replaced(
    context: EngineContext, start_peer: Callable[..., Awaitable[Peer]]
) -> None:
    peer = await start_peer("none", "AA-close")
    producer = context.producer(f"mllp://127.0.0.1:{peer.port}?timeout=200ms")
    with pytest.raises(MllpError, match=r"no ACK within 0.2s"):
        await producer.send(message("M-1"))
    assert await producer.send(message("M-2")) is not None  # a fresh connection; the peer closes it after
    assert await producer.send(message("M-3")) is not None  # the closed one is noticed and replaced
    assert peer.connections == 3 and peer.received == ["M-1", "M-2", "M-3"]
    with pytest.raises(ApplicationRejectError, match="not an HL7 v2 message"):
        await producer.send(Exchange(body=b"hello"))
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = sock.getsockname()[1]
    with pytest.raises(MllpError, match="ConnectionRefusedError"):
        await context.producer(f"mllp://127.0.0.1:{nobody}").send(message("M-4"))


async def test_tls_sender_presents_its_certificate(
    context: EngineContext, start_peer: Callable[..., Awaitable[Peer]], certs: Certs
) -> None:
    peer = await start_peer(ssl_context=certs.server_context(client_auth=ssl.CERT_REQUIRED))
    mine = f"tls=true&cafile={certs.ca}&certfile={certs.client_cert}&keyfile={certs.client_key}"
    reply = await context.producer(f"mllp://127.0.0.1:{peer.port}?{mine}").send(message("S-1"))
    assert reply is not None and reply.headers["hl7-ack-code"] == "AA"
    with pytest.raises(MllpError, match="CERTIFICATE_VERIFY_FAILED"):
        await context.producer(f"mllp://127.0.0.1:{peer.port}?tls=true").send(message("S-2"))


async def test_queued_deliveries_are_retried_on_ae_and_timeouts_and_dead_on_ar(
    tmp_path: Path, start_engine: StartEngine, start_peer: Callable[..., Awaitable[Peer]], db_url: str
) -> None:
    peer = await start_peer("AE", "none", "AA", "AR")
    target = f"mllp://127.0.0.1:{peer.port}?timeout=300ms"
    mllp_route(tmp_path, steps=f"- to: {{uri: '{target}', retry: {{max_attempts: 5, delay: 50ms}}}}")
    engine = await start_engine(db_url=db_url)
    async with connect(port_of(engine)) as client:
        assert (await client.call(adt("Q-1"))).code == "AA"

        def states() -> list[str]:
            return [d["status"] for d in admin.deliveries_to(engine.journal.engine, target)]

        await wait_for(lambda: states() == ["delivered"], 15, "Q-1 delivered")
        assert (await client.call(adt("Q-2"))).code == "AA"
        await wait_for(lambda: sorted(states()) == ["dead", "delivered"], 15, "Q-2 dead")
    log = {d["status"]: d for d in admin.deliveries_to(engine.journal.engine, target)}
    assert log["delivered"]["attempts"] == 3 and log["dead"]["attempts"] == 1
    assert "ApplicationRejectError" in log["dead"]["last_error"] and "peer says AR" in log["dead"]["last_error"]
    assert peer.received == ["Q-1", "Q-1", "Q-1", "Q-2"]


# -- configuration ----------------------------------------------------------------------


def lint_problems(tmp_path: Path, settings: Settings, sources: dict[str, str], to: str = "") -> list[str]:
    steps = f"\n    - to: {to}" if to else " []"
    write_routes(
        tmp_path / "routes", {k: f"route:\n  id: {k}\n  from: {v}\n  steps:{steps}\n" for k, v in sources.items()}
    )
    return [str(e).split(": ", 1)[1] for e in lint([tmp_path / "routes"], EngineContext(settings)).errors]


def test_lint_reports_bad_combinations(tmp_path: Path, make_settings: Callable[..., Settings], certs: Certs) -> None:
    sources = {
        "a": "mllp://0.0.0.0:2575",
        "b": "mllp://0.0.0.0:2575?ack=application",
        "c": "mllp://127.0.0.1:0?tls=true",
        "d": f"mllp://127.0.0.1:0?certfile={certs.server_cert}",
        "e": f"mllp://127.0.0.1:0?tls=true&certfile={certs.server_cert}&client_auth=required",
        "f": "mllp://127.0.0.1:0?ack=app",
        "g": "mllp://127.0.0.1:0?charset=UTF-16&on_ae=dead",
        "h": "mllp://127.0.0.1:0?timeout=5s&pool=4",
        "i": "mllp://:2580",
    }
    problems = "\n".join(lint_problems(tmp_path, make_settings(), sources, to="mllp://peer:0?ordered=true"))
    assert "'mllp://0.0.0.0:2575?ack=application' listens where route 'a' already does" in problems
    assert "tls=true needs option 'certfile'" in problems
    assert "option 'certfile' needs tls=true" in problems
    assert "client_auth=required needs option 'cafile'" in problems
    assert "option 'ack' must be one of original|application (got 'app')" in problems
    assert "option 'charset': 'UTF-16' is not a supported character set" in problems
    assert "option 'timeout' applies to 'to' endpoints only" in problems
    assert "option 'pool' applies to 'to' endpoints only" in problems
    assert "needs a host, e.g. mllp://0.0.0.0:2575" in problems
    assert "option 'ordered' applies to 'from' endpoints only" in problems
    assert "port 0 can only be listened on" in problems


def test_esb_docs_mllp_renders_every_option_with_its_doc() -> None:
    runner = CliRunner()
    result = runner.invoke(main_group, ["--json", "docs", "mllp"])
    assert result.exit_code == 0, result.output
    reference = json.loads(result.stdout)
    assert reference["uri"] == "mllp://HOST:PORT?option=value&..." and reference["consumer"] and reference["producer"]
    names = {o["name"]: o for o in reference["options"]}
    assert {"ack", "charset", "dedup_window", "ordered", "max_size", "idle_timeout", "read_timeout", "pool"} <= set(
        names
    )
    assert all(o["doc"] for o in reference["options"])
    assert names["dedup_window"]["default"] == "10m" and names["ack"]["type"] == "original|application"
    text = runner.invoke(main_group, ["docs", "mllp"])
    assert text.exit_code == 0 and text.stdout.startswith("mllp: HL7 v2 over MLLP")
    markdown = runner.invoke(main_group, ["docs", "--markdown", "mllp"]).stdout
    assert "| `on_ar` | retry\\|dead\\|accept | `dead` |" in markdown
