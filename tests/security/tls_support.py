"""Helpers of the transport-security tests: a PKI made by ``esb certs``' own code, clients, audit records.

The PKI has one trusted CA and:

- ``server``: the engine's certificate (SAN 127.0.0.1);
- ``allowed``: ``CN=pacs1,O=Hospital A``, the peer the routes list;
- ``other``: ``CN=rogue,O=Hospital B``, signed by the same CA but not listed;
- ``foreign``: ``CN=pacs1,O=Hospital A`` again, signed by another CA (same name, wrong issuer);
- ``admin``: ``CN=admin-tool``, listed for the engine's own port.
"""

from __future__ import annotations

import socket
import ssl
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp

from esb import audit
from esb.audit import codes
from esb.exchange import Exchange
from esb.security import certs

#: exchanges seen by ``transform: {python: tests.security.tls_support:record}``
RECEIVED: list[Exchange] = []
RECORD = "transform: {python: tests.security.tls_support:record}"
ALLOWED_SUBJECT = "CN=pacs1,O=Hospital A"


def record(exchange: Exchange) -> None:
    RECEIVED.append(exchange.copy())


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: certs.Issued
    allowed: certs.Issued
    other: certs.Issued
    foreign: certs.Issued
    admin: certs.Issued

    def client(self, who: certs.Issued | None) -> ssl.SSLContext:
        """A TLS 1.2+ client trusting our CA, presenting ``who``'s certificate (None: none)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if who is not None:
            context.load_cert_chain(who.cert, who.key)
        return context

    def listen_query(self, peers: str) -> str:
        """URI options of a TLS listener that requires client certificates and allows ``peers``."""
        return (
            f"certfile={self.server.cert}&keyfile={self.server.key}&cafile={self.ca}"
            f"&client_auth=required&peers={quote(peers, safe=':,=')}"
        )


def make_pki(directory: Path) -> Pki:
    trusted = certs.init_ca(directory / "ca", "Region Test CA")
    other_ca = certs.init_ca(directory / "other-ca", "Some Other CA")
    nodes = directory / "nodes"
    return Pki(
        ca=trusted.cert,
        server=certs.issue(directory / "ca", "esb-node", nodes, sans=["127.0.0.1", "localhost"], usage="server"),
        allowed=certs.issue(directory / "ca", ALLOWED_SUBJECT, nodes, usage="client"),
        other=certs.issue(directory / "ca", "CN=rogue,O=Hospital B", nodes, usage="client"),
        foreign=certs.issue(other_ca.cert.parent, ALLOWED_SUBJECT, directory / "foreign", usage="client"),
        admin=certs.issue(directory / "ca", "admin-tool", nodes, usage="client"),
    )


def tls11_client() -> ssl.SSLContext:
    """A client that offers TLS 1.1 only (Python warns that the version is deprecated: it is why it is here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@dataclass(frozen=True)
class Refusal:
    """One node-authentication-failure audit event, as the tests compare it."""

    local: str
    reason: str
    peer: str


def refusals(kind: str) -> list[Refusal]:
    """The node-authentication failures recorded for listeners of ``kind`` (``mllp``, ``https``, ``dicom``)."""
    found = []
    for event in audit.captured():
        if event.event_id != codes.SECURITY_ALERT or codes.NODE_AUTHENTICATION not in event.type_codes:
            continue
        local = event.participants[1].user_id
        if local.startswith(f"{kind}:"):
            found.append(Refusal(local, event.outcome_description or "", event.participants[0].user_id))
    return found


def reasons(kind: str) -> list[str]:
    return [r.reason for r in refusals(kind)]


def free_port() -> int:
    """A port for a listener of its own (``https:`` cannot take port 0: that is the engine's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def http_call(
    url: str, context: ssl.SSLContext, *, method: str = "POST", headers: dict[str, str] | None = None
) -> int | str:
    """The HTTP status, or how the connection failed (``refused: ...``)."""
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            async with session.request(method, url, data=b"x", headers=headers) as answer:
                await answer.read()
                return answer.status
    except aiohttp.ClientError as exc:
        return f"refused: {type(exc).__name__}"
