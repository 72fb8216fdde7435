"""SSL contexts for ``https:`` endpoints, built from the stdlib's secure defaults.

``ssl.create_default_context`` already picks sane protocol versions and
ciphers; all we add is the files the route names and the client-auth mode.
"""

from __future__ import annotations

import ssl
from typing import Protocol


class TlsOptions(Protocol):
    """The TLS fields an endpoint's options carry (``https:``, ``mllp:`` with tls=true)."""

    @property
    def certfile(self) -> str | None: ...
    @property
    def keyfile(self) -> str | None: ...
    @property
    def cafile(self) -> str | None: ...
    @property
    def client_auth(self) -> str: ...
    @property
    def verify(self) -> bool: ...


_CLIENT_AUTH = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def server_context(options: TlsOptions) -> ssl.SSLContext:
    """The listening side: our certificate, and the CA callers' certificates must chain to."""
    assert options.certfile, "lint requires certfile for a TLS consumer"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(options.certfile, options.keyfile)
    if options.cafile:
        context.load_verify_locations(cafile=options.cafile)
    context.verify_mode = _CLIENT_AUTH[options.client_auth]
    return context


def client_context(options: TlsOptions) -> ssl.SSLContext:
    """The calling side: whom we trust (cafile or the system store) and our client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=options.cafile)
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.certfile:
        context.load_cert_chain(options.certfile, options.keyfile)
    return context


def peer_subject(peercert: object) -> str | None:
    """``CN=x,O=y`` from ``SSLSocket.getpeercert()``, for the ``http-tls-subject`` header."""
    if not isinstance(peercert, dict):
        return None
    subject = peercert.get("subject") or ()
    parts = [f"{key}={value}" for rdn in subject for key, value in rdn]
    return ",".join(parts) or None
