"""https: with mutual TLS: refusals at the handshake, allowed peers per route on a shared port, audit.

Two routes share one HTTPS port (same TLS files, so one server) with
different ``peers``: the check is per path, after TLS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from esb import audit
from esb.runtime.engine import Engine
from tests.conftest import write_routes
from tests.security import tls_support
from tests.security.tls_support import RECORD, Pki, free_port, http_call, make_pki, reasons, refusals, tls11_client
from tests.support import StartEngine, wait_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    audit.clear_captured()
    tls_support.RECEIVED.clear()
    yield
    tls_support.RECEIVED.clear()


async def https_engine(tmp_path: Path, start_engine: StartEngine, pki: Pki) -> tuple[Engine, int]:
    port = free_port()
    routes = {
        "secure": f"https://127.0.0.1:{port}/secure?" + pki.listen_query(f"subject:{tls_support.ALLOWED_SUBJECT}"),
        "rogues": f"https://127.0.0.1:{port}/rogues?" + pki.listen_query("cn:rogue"),
    }
    write_routes(
        tmp_path / "routes",
        {rid: f"route:\n  id: {rid}\n  from: {uri}\n  steps:\n    - {RECORD}\n" for rid, uri in routes.items()},
    )
    return await start_engine(), port


async def test_https_refuses_every_client_without_a_valid_allowed_certificate(
    tmp_path: Path, start_engine: StartEngine, pki: Pki
) -> None:
    _, port = await https_engine(tmp_path, start_engine, pki)
    secure, rogues = f"https://127.0.0.1:{port}/secure", f"https://127.0.0.1:{port}/rogues"

    # (a) no certificate, (b) the allowed name from another CA, TLS 1.1: refused at the handshake
    assert str(await http_call(secure, pki.client(None))).startswith("refused:")
    await wait_for(lambda: len(refusals("https")) == 1, what="the refusal of a client without a certificate")
    assert str(await http_call(secure, pki.client(pki.foreign))).startswith("refused:")
    await wait_for(lambda: len(refusals("https")) == 2, what="the refusal of a foreign certificate")
    assert str(await http_call(secure, tls11_client())).startswith("refused:")
    await wait_for(lambda: len(refusals("https")) == 3, what="the refusal of TLS 1.1")
    # (c) valid certificates, each allowed on one path only: 403 on the other
    assert await http_call(secure, pki.client(pki.other)) == 403
    assert await http_call(rogues, pki.client(pki.allowed)) == 403
    assert tls_support.RECEIVED == []
    assert await http_call(rogues, pki.client(pki.other)) == 200
    # (d) the allowed peer; a tls-peer-* header it sends itself is not taken for ours
    spoof = {"tls-peer-subject": "CN=admin", "tls-peer-fingerprint": "00" * 32}
    assert await http_call(secure, pki.client(pki.allowed), headers=spoof) == 200

    rogue, allowed = tls_support.RECEIVED
    assert rogue.headers["tls-peer-subject"] == "CN=rogue,O=Hospital B"
    assert rogue.headers["tls-peer-fingerprint"] == pki.other.fingerprint
    assert allowed.headers["http-path"] == "/secure"
    assert allowed.headers["tls-peer-subject"] == "CN=pacs1,O=Hospital A"
    assert allowed.headers["tls-peer-fingerprint"] == pki.allowed.fingerprint
    assert not any(name.startswith("http-header-tls-peer") for name in allowed.headers)

    assert reasons("https") == [
        "TLS handshake failed: peer did not return a certificate",
        "TLS handshake failed: certificate verify failed",
        "TLS handshake failed: unsupported protocol",
        "certificate not allowed",
        "certificate not allowed",
    ]
    found = refusals("https")
    assert [r.local for r in found] == [f"https:{port}"] * 3 + [f"https:{port}/secure", f"https:{port}/rogues"]
    assert [r.peer for r in found[3:]] == ["CN=rogue,O=Hospital B", "CN=pacs1,O=Hospital A"]


async def test_a_refused_peer_is_answered_once_per_connection(
    tmp_path: Path, start_engine: StartEngine, pki: Pki
) -> None:
    _, port = await https_engine(tmp_path, start_engine, pki)
    url = f"https://127.0.0.1:{port}/secure"
    connector = aiohttp.TCPConnector(ssl=pki.client(pki.other), limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(2):  # keep-alive would reuse the connection: the refusal closes it
            async with session.post(url, data=b"x") as answer:
                assert answer.status == 403
                assert answer.headers.get("Connection", "").lower() == "close"
                assert "certificate not allowed" in (await answer.json())["error"]
    assert reasons("https") == ["certificate not allowed", "certificate not allowed"]


async def test_a_port_declared_tls_serves_every_mount_with_its_peers_unless_a_mount_has_its_own(pki: Pki) -> None:
    """What the engine's port does with listen.tls_*: mounts without a context join the port's TLS."""
    from aiohttp import web

    from esb.http.hub import HttpHub, MountConflictError
    from esb.security.peers import AllowedPeers
    from esb.security.tls import server_context

    async def ok(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    hub = HttpHub()
    context = server_context(str(pki.server.cert), str(pki.server.key), str(pki.ca), "required")
    hub.listen_tls("127.0.0.1", 0, context, peers=AllowedPeers.parse(["cn:admin-tool"]))
    try:
        hub.mount("127.0.0.1", 0, "/healthz", ok)
        hub.mount("127.0.0.1", 0, "/pacs", ok, prefix=True, peers=AllowedPeers.parse(["cn:pacs1"]))
        with pytest.raises(MountConflictError, match="already serves HTTPS with another TLS setup"):
            another = server_context(str(pki.server.cert), str(pki.server.key))
            hub.mount("127.0.0.1", 0, "/other", ok, ssl_context=another)
        with pytest.raises(MountConflictError, match="declare its TLS before mounting on it"):
            hub.listen_tls("127.0.0.1", 0, context)
        await hub.start()
        base = f"https://127.0.0.1:{hub.bound_port('127.0.0.1', 0)}"
        assert await http_call(f"{base}/healthz", pki.client(pki.admin), method="GET") == 200
        assert await http_call(f"{base}/healthz", pki.client(pki.allowed), method="GET") == 403
        assert await http_call(f"{base}/pacs/studies", pki.client(pki.allowed), method="GET") == 200
        assert await http_call(f"{base}/pacs/studies", pki.client(pki.admin), method="GET") == 403
        assert await http_call(f"{base}/nothing", pki.client(pki.admin), method="GET") == 404
    finally:
        await hub.close()
    assert reasons("https") == ["certificate not allowed", "certificate not allowed"]
