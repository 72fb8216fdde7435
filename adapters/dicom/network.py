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


class Server(ThreadedAssociationServer):
    """pynetdicom's threaded server, started and stopped by the consumer rather than by the AE."""

    daemon_threads = True
    reuse_port = False

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
