"""http:/https: adapters against real aiohttp peers and real engines on 127.0.0.1.

Certificates (a CA, a server certificate for IP 127.0.0.1, a client
certificate) come from ``tests/tlsutil.py``, made with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from esb.errors import DeliveryError, PermanentDeliveryError
from esb.exchange import Exchange
from esb.journal import admin
from esb.journal.schema import messages
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.settings import Settings
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for
from tests.tlsutil import Certs, make_certs


def free_port() -> int:
    """A port nobody listens on (for a refused connection or a TLS server of its own)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- certificates ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


# -- a peer that records what it gets ----------------------------------------------------


@dataclass
class Peer:
    #: answered in order, then 200; a path /status/NNN always answers NNN
    statuses: list[int]
    port: int = 0
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path.startswith("/status/"):
            status = int(request.path.rsplit("/", 1)[1])
        elif request.path == "/slow":
            await self.release.wait()
            status = 200
        else:
            status = self.statuses.pop(0) if self.statuses else 200
        self.requests.append((request.method, request.path, dict(request.headers), body))
        text = "missing field PID-3" if status == 400 else f"peer answers {status}"
        return web.Response(status=status, text=text, content_type="text/plain")


@pytest.fixture
async def start_peer() -> AsyncIterator[Callable[..., Awaitable[Peer]]]:
    started: list[tuple[Peer, web.AppRunner]] = []

    async def start(statuses: tuple[int, ...] = (), ssl_context: ssl.SSLContext | None = None, port: int = 0) -> Peer:
        peer = Peer(list(statuses))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", peer.handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
        peer.port = int(runner.addresses[0][1])
        started.append((peer, runner))
        return peer

    yield start
    for peer, runner in started:
        peer.release.set()
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def context(make_settings: Callable[..., Settings]) -> AsyncIterator[EngineContext]:
    """A bare engine context: producers without an engine, for status mapping tests."""
    ctx = EngineContext(make_settings())
    yield ctx
    await ctx.close()


def one_route(tmp_path: Path, source: str, steps: str = "- log: {message: got it}", extra: str = "") -> None:
    text = f"route:\n  id: r\n  from: {source}\n  steps:\n    {steps}\n{extra}"
    (tmp_path / "routes").mkdir(exist_ok=True)
    (tmp_path / "routes" / "r.yaml").write_text(text, encoding="utf-8")


# -- consumer ---------------------------------------------------------------------------


async def test_post_is_routed_and_answered_with_the_final_body(
    tmp_path: Path, start_engine: StartEngine, client: aiohttp.ClientSession, db_url: str
) -> None:
    one_route(tmp_path, "http://127.0.0.1:0/orders", "- transform: {python: transforms.common:upper}")
    engine = await start_engine(db_url=db_url)
    url = f"http://127.0.0.1:{engine.http_port}/orders?batch=7"
    headers = {"Content-Type": "text/plain; charset=utf-8", "Authorization": "Bearer s3cret", "X-Trace": "t-1"}
    async with client.post(url, data=b"hello", headers=headers) as answer:
        assert answer.status == 200
        assert await answer.read() == b"HELLO"
        assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
        message_id = answer.headers["X-Message-Id"]
    stored = admin.get_message(engine.journal.engine, message_id)
    assert stored["status"] == "processed" and stored["body"] == b"hello"
    kept = stored["headers"]
    assert (kept["http-method"], kept["http-path"], kept["http-query"]) == ("POST", "/orders", "batch=7")
    assert kept["http-header-x-trace"] == "t-1" and kept["http-remote"] == "127.0.0.1"
    assert kept["content-type"] == "text/plain; charset=utf-8"
    assert "http-header-authorization" not in kept
    assert not any("s3cret" in value for value in kept.values())


async def test_reply_accepted_answers_202_with_the_journaled_message_id(
    tmp_path: Path, start_engine: StartEngine, client: aiohttp.ClientSession
) -> None:
    one_route(tmp_path, "http://127.0.0.1:0/in?reply=accepted")
    engine = await start_engine()
    async with client.put(f"http://127.0.0.1:{engine.http_port}/in", data=b"<a/>") as answer:
        assert answer.status == 202
        message_id = (await answer.json())["message_id"]
    assert admin.get_message(engine.journal.engine, message_id)["body"] == b"<a/>"


async def test_requests_refused_before_journaling(
    tmp_path: Path, start_engine: StartEngine, client: aiohttp.ClientSession
) -> None:
    one_route(tmp_path, "http://127.0.0.1:0/small?max_body=10&content_types=application/json,text/*")
    engine = await start_engine()
    base = f"http://127.0.0.1:{engine.http_port}"
    json_type = {"Content-Type": "application/json"}
    async with client.post(f"{base}/small", data=b"x" * 11, headers=json_type) as answer:
        assert answer.status == 413
        assert "larger than the 10 bytes" in (await answer.json())["error"]

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"12345"

    async with client.post(f"{base}/small", data=chunked(), headers=json_type) as answer:
        assert answer.status == 413
    async with client.post(f"{base}/small", data=b"{}", headers={"Content-Type": "application/xml"}) as answer:
        assert answer.status == 415
        assert "application/xml" in (await answer.json())["error"]
    async with client.get(f"{base}/small") as answer:
        assert answer.status == 405 and answer.headers["Allow"] == "POST, PUT"
    async with client.post(f"{base}/elsewhere", data=b"{}", headers=json_type) as answer:
        assert answer.status == 404
    assert admin.list_messages(engine.journal.engine) == []
    async with client.post(f"{base}/small", data=b"hi", headers={"Content-Type": "text/plain"}) as answer:
        assert answer.status == 200
    assert len(admin.list_messages(engine.journal.engine)) == 1


async def test_prefix_serves_the_paths_below(
    tmp_path: Path, start_engine: StartEngine, client: aiohttp.ClientSession
) -> None:
    one_route(tmp_path, "http://127.0.0.1:0/fhir?prefix=true&methods=get,post")
    engine = await start_engine()
    async with client.get(f"http://127.0.0.1:{engine.http_port}/fhir/Patient/1") as answer:
        assert answer.status == 200
        stored = admin.get_message(engine.journal.engine, answer.headers["X-Message-Id"])
    assert stored["headers"]["http-path"] == "/fhir/Patient/1"


async def test_failed_route_answers_500_with_the_message_id(
    tmp_path: Path, start_engine: StartEngine, client: aiohttp.ClientSession
) -> None:
    one_route(tmp_path, "http://127.0.0.1:0/strict", '- validate: {xpath: "/order[@id]"}')
    engine = await start_engine()
    async with client.post(f"http://127.0.0.1:{engine.http_port}/strict", data=b"<order/>") as answer:
        assert answer.status == 500
        body = await answer.json()
    assert body["error"] == "ValidationError" and set(body) == {"error", "message_id"}
    assert admin.get_message(engine.journal.engine, body["message_id"])["status"] == "failed"


async def test_on_error_reply_status_and_filtered_204(
    tmp_path: Path, start_engine: StartEngine, client: aiohttp.ClientSession
) -> None:
    write_routes(
        tmp_path / "routes",
        {
            "strict": """
                route:
                  id: strict
                  from: http://127.0.0.1:0/strict
                  steps:
                    - validate: {xpath: "/order[@id]"}
                  on_error:
                    - reply: {status: "422"}
            """,
            "picky": """
                route:
                  id: picky
                  from: http://127.0.0.1:0/picky
                  steps:
                    - filter: {header: http-header-x-kind, equals: wanted}
            """,
        },
    )
    engine = await start_engine()
    base = f"http://127.0.0.1:{engine.http_port}"
    async with client.post(f"{base}/strict", data=b"<order/>") as answer:
        assert answer.status == 422 and (await answer.json())["error"] == "ValidationError"
    async with client.post(f"{base}/picky", data=b"x", headers={"X-Kind": "other"}) as answer:
        assert answer.status == 204
    async with client.post(f"{base}/picky", data=b"x", headers={"X-Kind": "wanted"}) as answer:
        assert answer.status == 200 and await answer.read() == b"x"


async def test_journal_failure_answers_503_with_retry_after(
    tmp_path: Path, start_engine: StartEngine, client: aiohttp.ClientSession
) -> None:
    one_route(tmp_path, "http://127.0.0.1:0/in")
    engine = await start_engine()
    url = f"http://127.0.0.1:{engine.http_port}/in"
    with engine.journal.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {messages.name} RENAME TO away"))
    async with client.post(url, data=b"x") as answer:
        assert answer.status == 503 and int(answer.headers["Retry-After"]) > 0
    with engine.journal.engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE away RENAME TO {messages.name}"))
    async with client.post(url, data=b"x") as answer:
        assert answer.status == 200


# -- producer ---------------------------------------------------------------------------


async def test_delivers_to_a_peer_end_to_end(
    tmp_path: Path,
    start_engine: StartEngine,
    start_peer: Callable[..., Awaitable[Peer]],
    client: aiohttp.ClientSession,
    db_url: str,
) -> None:
    peer = await start_peer()
    target = f"http://127.0.0.1:{peer.port}/in?method=PUT&headers=X-Api-Key:k1&forward_headers=http-header-x-trace"
    one_route(tmp_path, "http://127.0.0.1:0/orders?reply=accepted", f"- to: {target}")
    engine = await start_engine(db_url=db_url)
    headers = {"Content-Type": "application/hl7-v2", "X-Trace": "t-9"}
    async with client.post(f"http://127.0.0.1:{engine.http_port}/orders", data=b"MSH|", headers=headers) as answer:
        message_id = (await answer.json())["message_id"]
    await wait_for(lambda: len(peer.requests) == 1)
    method, path, sent, body = peer.requests[0]
    assert (method, path, body) == ("PUT", "/in", b"MSH|")
    assert sent["Content-Type"] == "application/hl7-v2"
    assert sent["X-Api-Key"] == "k1" and sent["http-header-x-trace"] == "t-9"

    def delivered() -> bool:
        deliveries = admin.get_message(engine.journal.engine, message_id)["deliveries"]
        return [d["status"] for d in deliveries] == ["delivered"]

    await wait_for(delivered)


def retried_route(tmp_path: Path, target: str, attempts: int = 4) -> None:
    steps = f'- to: {{uri: "{target}", retry: {{max_attempts: {attempts}, delay: 50ms}}}}'
    one_route(tmp_path, "http://127.0.0.1:0/in?reply=accepted", steps)


async def test_peer_503_is_retried_then_delivered(
    tmp_path: Path,
    start_engine: StartEngine,
    start_peer: Callable[..., Awaitable[Peer]],
    client: aiohttp.ClientSession,
) -> None:
    peer = await start_peer(statuses=(503,))
    retried_route(tmp_path, f"http://127.0.0.1:{peer.port}/in")
    engine = await start_engine()
    async with client.post(f"http://127.0.0.1:{engine.http_port}/in", data=b"x") as answer:
        message_id = (await answer.json())["message_id"]

    def log() -> list[str]:
        deliveries = admin.get_message(engine.journal.engine, message_id)["deliveries"]
        return [a["outcome"] for d in deliveries for a in d["attempt_log"]]

    await wait_for(lambda: log() == ["error", "ok"])
    first = admin.get_message(engine.journal.engine, message_id)["deliveries"][0]["attempt_log"][0]
    assert f"http://127.0.0.1:{peer.port}/in answered 503" in first["error"]


async def test_peer_400_goes_dead_at_once(
    tmp_path: Path,
    start_engine: StartEngine,
    start_peer: Callable[..., Awaitable[Peer]],
    client: aiohttp.ClientSession,
) -> None:
    peer = await start_peer(statuses=(400,))
    retried_route(tmp_path, f"http://127.0.0.1:{peer.port}/in?timeout=5s")
    engine = await start_engine()
    async with client.post(f"http://127.0.0.1:{engine.http_port}/in", data=b"x"):
        pass
    await wait_for(lambda: len(admin.list_dead(engine.journal.engine)) == 1)
    dead = admin.list_dead(engine.journal.engine)[0]
    assert dead["attempts"] == 1 and len(peer.requests) == 1
    error = dead["last_error"]
    assert error.startswith("PermanentDeliveryError: POST http://127.0.0.1:")
    assert "/in answered 400 Bad Request: missing field PID-3" in error and "timeout" not in error


async def test_connection_refused_is_retried_until_the_peer_is_up(
    tmp_path: Path,
    start_engine: StartEngine,
    start_peer: Callable[..., Awaitable[Peer]],
    client: aiohttp.ClientSession,
) -> None:
    port = free_port()
    retried_route(tmp_path, f"http://127.0.0.1:{port}/in", attempts=20)
    engine = await start_engine()
    async with client.post(f"http://127.0.0.1:{engine.http_port}/in", data=b"late") as answer:
        message_id = (await answer.json())["message_id"]

    def deliveries() -> list[dict[str, Any]]:
        return list(admin.get_message(engine.journal.engine, message_id)["deliveries"])

    await wait_for(lambda: any(d["attempt_log"] for d in deliveries()))
    assert "ClientConnectorError" in deliveries()[0]["attempt_log"][0]["error"]
    peer = await start_peer(port=port)
    await wait_for(lambda: deliveries()[0]["status"] == "delivered")
    assert [r[3] for r in peer.requests] == [b"late"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (408, DeliveryError),
        (429, DeliveryError),
        (500, DeliveryError),
        (503, DeliveryError),
        (400, PermanentDeliveryError),
        (404, PermanentDeliveryError),
        (301, PermanentDeliveryError),
    ],
)
async def test_status_mapping(
    context: EngineContext, start_peer: Callable[..., Awaitable[Peer]], status: int, error: type[Exception]
) -> None:
    peer = await start_peer()
    producer = context.producer(f"http://127.0.0.1:{peer.port}/status/{status}")
    with pytest.raises(error, match=f"POST http://127.0.0.1:{peer.port}/status/{status} answered {status}") as raised:
        await producer.send(Exchange(body=b"x"))
    assert type(raised.value) is error


async def test_reply_and_timeout(context: EngineContext, start_peer: Callable[..., Awaitable[Peer]]) -> None:
    peer = await start_peer()
    reply = await context.producer(f"http://127.0.0.1:{peer.port}/status/201?content_type=text/csv").send(
        Exchange(body=b"a,b", headers={"content-type": "text/plain"})
    )
    assert reply is not None and reply.body == b"peer answers 201"
    assert reply.headers == {"http-status": "201", "content-type": "text/plain; charset=utf-8"}
    assert peer.requests[0][2]["Content-Type"] == "text/csv"
    slow = context.producer(f"http://127.0.0.1:{peer.port}/slow?timeout=100ms")
    with pytest.raises(DeliveryError, match=r"/slow: no answer within 0.1s"):
        await slow.send(Exchange(body=b"x"))


# -- TLS --------------------------------------------------------------------------------


async def test_https_consumer_requires_a_client_certificate(
    tmp_path: Path, start_engine: StartEngine, certs: Certs
) -> None:
    port = free_port()
    tls = f"certfile={certs.server_cert}&keyfile={certs.server_key}&cafile={certs.ca}&client_auth=required"
    one_route(tmp_path, f"https://127.0.0.1:{port}/secure?{tls}")
    engine = await start_engine()
    url = f"https://127.0.0.1:{port}/secure"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=certs.client_context(with_cert=False))) as s:
        with pytest.raises(aiohttp.ClientError):
            async with s.post(url, data=b"x") as answer:
                await answer.read()
    assert admin.list_messages(engine.journal.engine) == []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=certs.client_context(with_cert=True))) as s:
        async with s.post(url, data=b"x") as answer:
            assert answer.status == 200
            stored = admin.get_message(engine.journal.engine, answer.headers["X-Message-Id"])
    assert stored["headers"]["http-tls-subject"] == "commonName=esb test client"


async def test_https_producer_verifies_the_peer_and_presents_its_certificate(
    context: EngineContext, start_peer: Callable[..., Awaitable[Peer]], certs: Certs
) -> None:
    peer = await start_peer(ssl_context=certs.server_context(client_auth=ssl.CERT_REQUIRED))
    base = f"https://127.0.0.1:{peer.port}/in"
    mine = f"certfile={certs.client_cert}&keyfile={certs.client_key}"
    reply = await context.producer(f"{base}?cafile={certs.ca}&{mine}").send(Exchange(body=b"x"))
    assert reply is not None and reply.headers["http-status"] == "200"
    with pytest.raises(DeliveryError, match="certificate verify failed"):
        await context.producer(f"{base}?{mine}").send(Exchange(body=b"x"))
    reply = await context.producer(f"{base}?verify=false&{mine}").send(Exchange(body=b"x"))
    assert reply is not None and len(peer.requests) == 2


# -- lint -------------------------------------------------------------------------------


def lint_messages(tmp_path: Path, settings: Settings, routes: dict[str, str]) -> list[str]:
    write_routes(tmp_path / "routes", {k: f"route:\n  id: {k}\n  from: {v}\n  steps: []\n" for k, v in routes.items()})
    return [str(e).split(": ", 1)[1] for e in lint([tmp_path / "routes"], EngineContext(settings)).errors]


def test_lint_listen_conflicts_and_misplaced_options(
    tmp_path: Path, make_settings: Callable[..., Settings], certs: Certs
) -> None:
    settings = make_settings()
    routes = {
        "a": "http://127.0.0.1:9100/orders",
        "b": "http://127.0.0.1:9100/orders/",
        "c": "http://127.0.0.1:9100/results",
        "d": "http://127.0.0.1:9101/x?method=GET&timeout=5s",
        "e": "https://127.0.0.1:9102/x",
        "f": "https://127.0.0.1:0/y?certfile=/nowhere.pem",
        "g": "http://127.0.0.1:0/metrics",
    }
    problems = "\n".join(lint_messages(tmp_path, settings, routes))
    assert "'http://127.0.0.1:9100/orders/' listens where route 'a' already does" in problems
    assert "results" not in problems
    assert "option 'method' applies to 'to' endpoints only" in problems
    assert "option 'timeout' applies to 'to' endpoints only" in problems
    assert "https: needs option 'certfile'" in problems
    assert "option 'certfile': no such file '/nowhere.pem'" in problems
    assert "https: port 0 is the engine's plain HTTP port" in problems
    assert "path '/metrics' is served by the engine itself" in problems
    assert len(problems.splitlines()) == 7


async def test_hub_gives_a_port_one_tls_setup(certs: Certs) -> None:
    from esb.http.hub import HttpHub, MountConflictError

    async def ok(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    hub = HttpHub()
    context = certs.server_context()
    try:
        hub.mount("127.0.0.1", 0, "/a", ok, ssl_context=context)
        hub.mount("127.0.0.1", 0, "/b", ok, ssl_context=context)
        with pytest.raises(MountConflictError, match="already serves HTTPS; give /c a port of its own"):
            hub.mount("127.0.0.1", 0, "/c", ok)
        with pytest.raises(MountConflictError, match="with another TLS setup"):
            hub.mount("127.0.0.1", 0, "/c", ok, ssl_context=certs.server_context())
        await hub.start()
        port = hub.bound_port("127.0.0.1", 0)
        connector = aiohttp.TCPConnector(ssl=certs.client_context(with_cert=False))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"https://127.0.0.1:{port}/b") as answer:
                assert await answer.text() == "ok"
    finally:
        await hub.close()
