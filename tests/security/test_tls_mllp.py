"""mllp: over TLS 1.2+ with mutual authentication: who is refused, who is taken, what is audited.

Clients are python-hl7's asyncio MLLP streams with an SSL context; the
certificates come from ``esb certs``' own code (:mod:`tests.security.tls_support`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from esb import audit
from esb.runtime.engine import Engine
from tests.adapters.mllp_support import Client, adt
from tests.conftest import write_routes
from tests.security import tls_support
from tests.security.tls_support import RECORD, Pki, make_pki, reasons, refusals, tls11_client
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


async def mllp_engine(tmp_path: Path, start_engine: StartEngine, query: str) -> tuple[Engine, int]:
    route = f"route:\n  id: r\n  from: mllp://127.0.0.1:0?tls=true&{query}\n  steps:\n    - {RECORD}\n"
    write_routes(tmp_path / "routes", {"r": route})
    engine = await start_engine()
    return engine, int(engine.routes["r"].consumer.port)  # type: ignore[union-attr]


async def send(port: int, context: ssl.SSLContext, control_id: str) -> str:
    """The ACK code, or how the connection ended without one."""
    try:
        client = await Client.open(port, ssl=context, server_hostname="127.0.0.1")
    except (ssl.SSLError, ConnectionError) as exc:
        return f"handshake: {type(exc).__name__}"
    try:
        return (await client.call(adt(control_id))).code
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as exc:
        return f"closed: {type(exc).__name__}"
    finally:
        client.writer.close()


async def test_mllp_refuses_every_client_without_a_valid_allowed_certificate(
    tmp_path: Path, start_engine: StartEngine, pki: Pki
) -> None:
    engine, port = await mllp_engine(tmp_path, start_engine, pki.listen_query("cn:pacs1"))

    # (a) no client certificate: TLS 1.3 lets the client finish first, then the server refuses
    assert (await send(port, pki.client(None), "A-1")).startswith(("handshake:", "closed:"))
    await wait_for(lambda: len(refusals("mllp")) == 1, what="the refusal of a client without a certificate")
    # (b) a certificate with the allowed name, from another CA
    assert (await send(port, pki.client(pki.foreign), "B-1")).startswith(("handshake:", "closed:"))
    await wait_for(lambda: len(refusals("mllp")) == 2, what="the refusal of a foreign certificate")
    # (c) a certificate of our CA, not in peers: closed before anything is read, no ACK
    assert (await send(port, pki.client(pki.other), "C-1")).startswith("closed:")
    # TLS 1.1
    assert (await send(port, tls11_client(), "D-1")).startswith(("handshake:", "closed:"))
    await wait_for(lambda: len(refusals("mllp")) == 4, what="four refusals")
    assert tls_support.RECEIVED == []

    # (d) the allowed peer: ACKed, and the exchange says who sent it
    assert await send(port, pki.client(pki.allowed), "E-1") == "AA"
    (seen,) = tls_support.RECEIVED
    assert seen.headers["tls-peer-subject"] == "CN=pacs1,O=Hospital A"
    assert seen.headers["tls-peer-fingerprint"] == pki.allowed.fingerprint
    assert seen.headers["hl7-control-id"] == "E-1"

    found = refusals("mllp")
    assert {r.local for r in found} == {f"mllp:{port}"}
    assert reasons("mllp") == [
        "TLS handshake failed: peer did not return a certificate",
        "TLS handshake failed: certificate verify failed",
        "certificate not allowed",
        "TLS handshake failed: unsupported protocol",
    ]
    assert found[2].peer == "CN=rogue,O=Hospital B"  # the refused node, by its certificate
    assert found[0].peer.startswith("127.0.0.1:")
    assert engine.routes["r"].consumer is not None


async def test_mllp_without_peers_takes_any_certificate_of_its_ca(
    tmp_path: Path, start_engine: StartEngine, pki: Pki
) -> None:
    query = f"certfile={pki.server.cert}&keyfile={pki.server.key}&cafile={pki.ca}&client_auth=required"
    _, port = await mllp_engine(tmp_path, start_engine, query)
    assert await send(port, pki.client(pki.other), "F-1") == "AA"
    assert tls_support.RECEIVED[0].headers["tls-peer-subject"] == "CN=rogue,O=Hospital B"
    assert refusals("mllp") == []
