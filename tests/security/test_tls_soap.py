"""soap: with tls=true and mutual authentication: refused nodes get no service (a SOAP Fault, 403), audited."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from adapters.soap.envelope import SOAP11, SOAP12
from esb import audit
from tests.conftest import write_routes
from tests.security import tls_support
from tests.security.tls_support import RECORD, Pki, free_port, make_pki, reasons, refusals, tls11_client
from tests.soap_client import Reply, post
from tests.support import StartEngine, wait_for

PING11 = f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><m:ping xmlns:m="urn:m"/></s:Body></s:Envelope>'.encode()
PING12 = f'<s:Envelope xmlns:s="{SOAP12}"><s:Body><m:ping xmlns:m="urn:m"/></s:Body></s:Envelope>'.encode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    audit.clear_captured()
    tls_support.RECEIVED.clear()
    yield
    tls_support.RECEIVED.clear()


async def ping(url: str, context: ssl.SSLContext, version: str = "1.1") -> Reply | str:
    """The SOAP answer, or how the connection failed."""
    data, media = (PING11, "text/xml; charset=utf-8") if version == "1.1" else (PING12, "application/soap+xml")
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            return await post(session, url, data, media, {"SOAPAction": '"urn:m:ping"'})
    except aiohttp.ClientError as exc:
        return f"refused: {type(exc).__name__}"


async def test_soap_refuses_every_client_without_a_valid_allowed_certificate(
    tmp_path: Path, start_engine: StartEngine, pki: Pki
) -> None:
    port = free_port()
    uri = f"soap://127.0.0.1:{port}/ws?tls=true&{pki.listen_query('cn:PACS1')}"  # cn: ignores case
    write_routes(tmp_path / "routes", {"r": f"route:\n  id: r\n  from: {uri}\n  steps:\n    - {RECORD}\n"})
    await start_engine()
    url = f"https://127.0.0.1:{port}/ws"

    assert str(await ping(url, pki.client(None))).startswith("refused:")  # (a)
    await wait_for(lambda: len(refusals("https")) == 1, what="the refusal of a client without a certificate")
    assert str(await ping(url, pki.client(pki.foreign))).startswith("refused:")  # (b)
    await wait_for(lambda: len(refusals("https")) == 2, what="the refusal of a foreign certificate")
    assert str(await ping(url, tls11_client())).startswith("refused:")
    await wait_for(lambda: len(refusals("https")) == 3, what="the refusal of TLS 1.1")
    # (c) a valid certificate not in peers: a Sender Fault, in the request's SOAP version, with 403
    for version, code in (("1.1", b">s:Client<"), ("1.2", b">s:Sender<")):
        refused = await ping(url, pki.client(pki.other), version)
        assert isinstance(refused, Reply) and refused.status == 403 and refused.version == version
        assert refused.fault is not None and code in refused.body
        assert refused.fault.reason == "client certificate refused: certificate not allowed"
    assert tls_support.RECEIVED == []
    # (d) the allowed peer
    answer = await ping(url, pki.client(pki.allowed))
    assert isinstance(answer, Reply) and answer.status == 200 and answer.fault is None
    (seen,) = tls_support.RECEIVED
    assert seen.headers["tls-peer-subject"] == "CN=pacs1,O=Hospital A"
    assert seen.headers["tls-peer-fingerprint"] == pki.allowed.fingerprint
    assert seen.headers["soap-action"] == "urn:m:ping"

    assert reasons("https") == [
        "TLS handshake failed: peer did not return a certificate",
        "TLS handshake failed: certificate verify failed",
        "TLS handshake failed: unsupported protocol",
        "certificate not allowed",
        "certificate not allowed",
    ]
    assert [r.local for r in refusals("https")][3:] == [f"https:{port}/ws"] * 2
