"""pynetdicom plumbing shared by both sides: TCP_NODELAY, the listening server, the AE settings.

Neither pynetdicom nor dcmtk turns Nagle's algorithm off, and a C-STORE
response then waits ~90 ms for a delayed ACK: every socket gets TCP_NODELAY
when it opens (``EVT_CONN_OPEN``). The server binds with SO_REUSEPORT on
request so several engine processes can share one port (pynetdicom serves
associations in threads, which do not scale past the GIL; processes do), and
does the TLS handshake in the association's thread rather than in the one
accept loop, so a slow TLS client cannot hold up everybody else's association.

pynetdicom's process-wide settings are set once here: no request/response
identifiers in its INFO log (they hold patient data) and no per-PDU debug
handlers (their formatting costs time on every PDU even when nobody reads it).
One fix is patched in: pynetdicom 3.0 closes a socket only when ``shutdown()``
succeeded first, so the socket of a refused connection or a reset association
stays open until the garbage collector finds it. And two speed-ups: command
sets and C-FIND identifiers are encoded by :mod:`adapters.dicom.encoding` (byte
for byte what pydicom writes, a fraction of its cost per message), and each
association's two polling loops wait for their work instead of sleeping a
fixed millisecond (:mod:`adapters.dicom.reactors`).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.events import Event
from pynetdicom.transport import AssociationSocket, ThreadedAssociationServer

from adapters.dicom import encoding, reactors
from adapters.dicom.options import DicomOptions
from esb.security.peers import (
    AllowedPeers,
    PeerIdentity,
    counts_as_authentication,
    handshake_reason,
    identity_of,
    refuse,
)

log = logging.getLogger("esb.adapters.dicom")

_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_HANDLER_LEVEL = "none"
if logging.getLogger("pynetdicom").level == logging.NOTSET:
    # One INFO line per association and DIMSE message would drown the engine's log.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def _shutdown_socket(self: AssociationSocket) -> None:
    sock = self.socket
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


AssociationSocket._shutdown_socket = _shutdown_socket  # type: ignore[method-assign]
encoding.install()
reactors.install()


def nodelay(event: Event) -> None:
    """``EVT_CONN_OPEN``: switch Nagle off on the association's socket."""
    transport: Any = getattr(event.assoc.dul, "socket", None)
    raw = getattr(transport, "socket", None)
    if isinstance(raw, socket.socket):
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # the peer is already gone; the association fails on its own
            pass


NODELAY_HANDLER: tuple[Any, Any] = (evt.EVT_CONN_OPEN, nodelay)


def configure(ae: AE, options: DicomOptions) -> None:
    """Timeouts and PDU size from the options (both sides)."""
    ae.acse_timeout = float(options.acse_timeout)
    ae.dimse_timeout = float(options.dimse_timeout)
    ae.network_timeout = float(options.network_timeout)
    ae.connection_timeout = float(options.acse_timeout)
    ae.maximum_pdu_size = options.max_pdu


#: A-ASSOCIATE-RJ PDU: rejected-permanent (1), by the DICOM UL service-user (1), calling AE title not recognized (3)
ASSOCIATE_RJ_UNKNOWN_CALLER = bytes([0x03, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 0x01, 0x03])
#: an A-ASSOCIATE-RQ larger than this is not read before the connection is closed (real ones are a few KiB)
MAX_REQUEST = 1024 * 1024


def _read_pdu(sock: socket.socket) -> bytes | None:
    """One PDU's bytes (an A-ASSOCIATE-RQ), or None when the peer closed or sent something too large."""
    head = b""
    while len(head) < 6:
        chunk = sock.recv(6 - len(head))
        if not chunk:
            return None
        head += chunk
    left = int.from_bytes(head[2:6], "big")
    if left > MAX_REQUEST:
        return None
    body = b""
    while len(body) < left:
        chunk = sock.recv(min(65536, left - len(body)))
        if not chunk:
            return None
        body += chunk
    return head + body


class Server(ThreadedAssociationServer):
    """pynetdicom's threaded server, started and stopped by the consumer rather than by the AE.

    Over TLS each association's thread does the handshake itself, before
    pynetdicom sees the socket: a failed handshake is a refused node (logged
    and audited), and a peer whose certificate is not in ``peers`` gets an
    A-ASSOCIATE-RJ (permanent, calling AE title not recognized) to its request.
    """

    daemon_threads = True
    reuse_port = False
    peers = AllowedPeers()
    handshake_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._identities: dict[str, PeerIdentity] = {}
        super().__init__(*args, **kwargs)

    def identity(self, address: str) -> PeerIdentity | None:
        """The certificate of the open association from ``host:port`` (for the exchange's tls-peer-* headers)."""
        return self._identities.get(address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if not isinstance(request, ssl.SSLSocket):
            super().process_request_thread(request, client_address)
            return
        if not self._accept_tls(request, client_address):
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)  # starts the association's own thread

    def forget(self, event: Event) -> None:
        """``EVT_CONN_CLOSE``: drop the identity of a closed association."""
        requestor = event.assoc.requestor
        self._identities.pop(f"{requestor.address}:{requestor.port}", None)

    def _accept_tls(self, sock: ssl.SSLSocket, client_address: Any) -> bool:
        local = f"dicom:{self.server_address[1]}"
        timeout = sock.gettimeout()
        sock.settimeout(self.handshake_timeout)
        try:
            sock.do_handshake()
        except (OSError, ValueError) as exc:
            if counts_as_authentication(exc):
                refuse(local, client_address, handshake_reason(exc))
            else:
                log.info("%s: TLS connection from %s closed before its handshake finished (%s)", local,
                         client_address, type(exc).__name__)  # fmt: skip
            return False
        identity = identity_of(sock)
        reason = self.peers.check(identity)
        if reason is None:
            # Set or cleared: a new connection from a reused port never inherits an old one's identity.
            address = f"{client_address[0]}:{client_address[1]}"
            if identity is not None:
                self._identities[address] = identity
            else:
                self._identities.pop(address, None)
            sock.settimeout(timeout)
            return True
        refuse(local, client_address, reason, identity)
        try:
            if _read_pdu(sock) is not None:
                sock.sendall(ASSOCIATE_RJ_UNKNOWN_CALLER)
        except OSError:
            pass  # the peer is gone; the refusal is recorded all the same
        return False

    def server_bind(self) -> None:
        if self.reuse_port:
            assert self.socket is not None
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        if self.ssl_context:
            # The handshake happens on the first read, in the association's thread.
            client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        return client, address

    def shutdown(self) -> None:
        """Stop the accept loop and close the socket (made with ``make_server``, not listed in ``ae._servers``)."""
        socketserver.BaseServer.shutdown(self)
        self.server_close()


class SharedServer(Server):
    reuse_port = True


def server_class(options: DicomOptions) -> type[Server]:
    return SharedServer if options.reuse_port else Server


def tls_client_args(context: ssl.SSLContext | None, host: str) -> tuple[ssl.SSLContext, str] | None:
    return (context, host) if context is not None else None
