"""The one TLS policy of every listener and client, and an asyncio TLS accept that sees failed handshakes.

Contexts start from the stdlib's secure defaults (``ssl.create_default_context``)
and set TLS 1.2 as the floor explicitly, so neither an old OpenSSL
configuration nor a later default change can let TLS 1.0/1.1 in (IHE ATNA
requires TLS 1.2 or later).

asyncio's own TLS servers (``create_server(ssl=...)``) drop a failed handshake
silently (a DEBUG line at most): the protocol never hears of the connection.
A Secure Node must record every refused node, so :class:`TlsAcceptor` does
what ``create_server(ssl=...)`` does, wrapping each connection in asyncio's
``SSLProtocol``, but keeps the handshake's outcome and hands a failure to
:func:`esb.security.peers.refuse`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any

from esb.security.peers import counts_as_authentication, handshake_reason, refuse

log = logging.getLogger("esb.security.tls")

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
#: a client that has not finished its handshake by then is dropped (asyncio's default is 60 s)
HANDSHAKE_TIMEOUT = 30
_VERIFY = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def server_context(
    certfile: str, keyfile: str | None = None, cafile: str | None = None, client_auth: str = "none"
) -> ssl.SSLContext:
    """A listener's context: our certificate, TLS 1.2+, and client certificates checked against ``cafile``.

    ``client_auth`` is none, optional or required (mutual TLS).
    """
    if client_auth not in _VERIFY:
        raise ValueError(f"client_auth must be one of {'|'.join(_VERIFY)} (got '{client_auth}')")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(certfile, keyfile)
    if cafile:
        context.load_verify_locations(cafile=cafile)
    context.verify_mode = _VERIFY[client_auth]
    return context


def client_context(
    cafile: str | None = None, certfile: str | None = None, keyfile: str | None = None, *, verify: bool = True
) -> ssl.SSLContext:
    """A caller's context: TLS 1.2+, the server verified against ``cafile`` (or the system CAs), our certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = MINIMUM_VERSION
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


class _Handshake(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol, remembering where the connection came from and to."""

    peer: Any = None
    sockname: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        super().connection_made(transport)


class TlsAcceptor:
    """Protocol factories for ``loop.create_server`` that speak TLS and report failed handshakes.

    ``kind`` names the listener in logs and audit records (``mllp`` ->
    ``mllp:2575``, with the bound port).
    """

    def __init__(self, context: ssl.SSLContext, kind: str, handshake_timeout: int = HANDSHAKE_TIMEOUT) -> None:
        self.context, self.kind, self.handshake_timeout = context, kind, handshake_timeout

    def factory(self, app: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.BaseProtocol]:
        """Wrap ``app`` (the plain protocol factory) so each connection is TLS before ``app`` sees it."""
        loop = asyncio.get_running_loop()

        def make() -> asyncio.BaseProtocol:
            waiter = loop.create_future()
            protocol = _Handshake(
                loop, app(), self.context, waiter, server_side=True, ssl_handshake_timeout=self.handshake_timeout
            )
            waiter.add_done_callback(lambda done: self._finished(protocol, done))
            return protocol

        return make

    def local(self, sockname: Any) -> str:
        port = sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else "?"
        return f"{self.kind}:{port}"

    def _finished(self, protocol: _Handshake, done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is None:
            return
        error = done.exception()
        assert error is not None
        if counts_as_authentication(error):
            refuse(self.local(protocol.sockname), protocol.peer, handshake_reason(error))
        else:
            log.info("%s: TLS connection from %s closed before its handshake finished (%s)",
                     self.local(protocol.sockname), protocol.peer, type(error).__name__)  # fmt: skip
