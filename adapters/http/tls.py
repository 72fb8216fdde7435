"""TLS options of endpoints (``https:``, and ``tls=true`` on mllp/soap/dicom), their lint, their SSL contexts.

The contexts come from :mod:`esb.security.tls` (the stdlib's secure defaults,
TLS 1.2 at least); all the options add is the files the route names, the
client-auth mode and the allowed ``peers`` (:mod:`esb.security.peers`).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from adapters.http.options import HttpOptions, misplaced
from esb.security import tls as security_tls
from esb.security.peers import AllowedPeers, peers_problem


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


def _meta(doc: str, side: str | None = None) -> dict[str, str]:
    return {"doc": doc, "side": side} if side else {"doc": doc}


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """The TLS options every TLS endpoint takes: certificates, CA, client authentication, verification.

    One definition, so ``https:`` and the adapters with a ``tls`` switch
    (:class:`TlsSwitch`) document, default and lint TLS alike; ``side`` tags
    say which options apply to 'from' or 'to' only.
    """

    certfile: str | None = field(
        default=None,
        metadata=_meta("PEM certificate chain: the server's (from, required with TLS) or the client's (to)."),
    )
    keyfile: str | None = field(
        default=None, metadata=_meta("PEM private key of certfile; default: the key inside certfile.")
    )
    cafile: str | None = field(
        default=None,
        metadata=_meta("PEM CA bundle: to verify client certificates (from) or the server (to; default: system CAs)."),
    )
    client_auth: Literal["none", "optional", "required"] = field(
        default="none", metadata=_meta("Ask callers for a client certificate signed by cafile (mutual TLS).", "from")
    )
    peers: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "Allowed client certificates (needs client_auth=required), comma list of subject:CN=x,O=y (the whole "
            "subject, RFC 4514), cn:NAME or sha256:FINGERPRINT; others are refused and audited. Empty: any "
            "certificate signed by cafile.",
            "from",
        ),
    )
    verify: bool = field(
        default=True,
        metadata=_meta(
            "Verify the server's certificate and host name; false only for tests, never in production.", "to"
        ),
    )


@dataclass(frozen=True, kw_only=True)
class _TlsFlag:
    tls: bool = field(default=False, metadata=_meta("Speak TLS on the connection (both sides)."))


@dataclass(frozen=True, kw_only=True)
class TlsSwitch(TlsFiles, _TlsFlag):
    """:class:`TlsFiles` behind ``tls=true``, for endpoints that speak plain TCP by default (mllp, soap, dicom).

    ``tls`` comes from a base of its own so it is listed first, before the files it switches on.
    """


@dataclass(frozen=True, kw_only=True)
class HttpsOptions(TlsFiles, HttpOptions):
    """``https:``: the ``http:`` options and TLS, always on."""

    port: int = field(default=443, metadata=_meta("TCP port."))


def server_context(options: TlsOptions) -> ssl.SSLContext:
    """The listening side: our certificate, TLS 1.2+, and the CA callers' certificates must chain to."""
    assert options.certfile, "lint requires certfile for a TLS consumer"
    return security_tls.server_context(options.certfile, options.keyfile, options.cafile, options.client_auth)


def allowed_peers(options: Any) -> AllowedPeers:
    """The ``peers`` of a consumer's options (empty for endpoints without the option); lint has read them."""
    return AllowedPeers.parse(getattr(options, "peers", ()))


class ServerContexts:
    """Server SSL contexts cached per TLS setup: routes sharing a port and the same files share one
    context object, which is what the HTTP hub compares to accept them on one server."""

    def __init__(self) -> None:
        self._contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}

    def get(self, options: TlsOptions) -> ssl.SSLContext:
        key = (options.certfile, options.keyfile, options.cafile, options.client_auth)
        if key not in self._contexts:
            self._contexts[key] = server_context(options)
        return self._contexts[key]


def tls_flag_problems(options: Any, *, consumer: bool, where: str) -> list[str]:
    """Lint for endpoints that switch TLS on with ``tls=true`` (``mllp:``, ``soap:``, ``dicom:``)."""
    found = []
    tls_options = [n for n in ("certfile", "keyfile", "cafile") if getattr(options, n)]
    if consumer and options.client_auth != "none":
        tls_options.append("client_auth")
    if consumer and options.peers:
        tls_options.append("peers")
    if not options.tls and tls_options:
        found.append(f"{where} option '{tls_options[0]}' needs tls=true")
    if options.tls:
        needs = f"{where} tls=true needs"
        found.extend(_setup_problems(options, consumer=consumer, where=where, needs=needs, serve=""))
    return found + _missing_files(options, where)


def tls_problems(options: TlsFiles, *, consumer: bool, where: str) -> list[str]:
    """Lint for ``https:``, where TLS is always on."""
    setup = _setup_problems(options, consumer=consumer, where=where, needs=f"{where} needs", serve=" to serve HTTPS")
    return setup + _missing_files(options, where)


def _setup_problems(options: Any, *, consumer: bool, where: str, needs: str, serve: str) -> list[str]:
    found = []
    if consumer and not options.certfile:
        found.append(f"{needs} option 'certfile' (the server certificate, PEM){serve}")
    if options.keyfile and not options.certfile:
        found.append(f"{where} option 'keyfile' needs 'certfile' too")
    if consumer and options.client_auth != "none" and not options.cafile:
        found.append(f"{where} client_auth={options.client_auth} needs option 'cafile' to verify client certificates")
    if consumer and options.peers:
        problem = peers_problem(options.peers)
        if problem:
            found.append(f"{where} option 'peers': {problem}")
        if options.client_auth != "required":
            found.append(f"{where} option 'peers' needs client_auth=required (peers are told apart by certificate)")
    return found


def _missing_files(options: Any, where: str) -> list[str]:
    return [
        f"{where} option '{name}': no such file '{value}'"
        for name in ("certfile", "keyfile", "cafile")
        if (value := getattr(options, name)) and not Path(value).is_file()
    ]


def socket_problems(options: Any, *, consumer: bool, where: str, example: str, extra: Sequence[str] = ()) -> list[str]:
    """Lint shared by socket endpoints with a host, a port and a ``tls`` switch (``mllp:``, ``dicom:``, ``soap:``).

    In this order: the host (``example`` shows one; nothing else is checked
    without it), options set on the side that ignores them, port 0 on the
    calling side, the scheme's own ``extra`` problems, then TLS.
    """
    if not options.host:
        return [f"{where} needs a host, e.g. {example}"]
    found = misplaced(options, consumer=consumer, where=where)
    if not consumer and options.port == 0:
        found.append(f"{where} port 0 can only be listened on; name the peer's port in 'to'")
    found.extend(extra)
    found.extend(tls_flag_problems(options, consumer=consumer, where=where))
    return found


def client_context(options: TlsOptions) -> ssl.SSLContext:
    """The calling side: TLS 1.2+, whom we trust (cafile or the system store) and our client certificate."""
    return security_tls.client_context(options.cafile, options.certfile, options.keyfile, verify=options.verify)


def peer_subject(peercert: object) -> str | None:
    """``CN=x,O=y`` from ``SSLSocket.getpeercert()``, for the ``http-tls-subject`` header."""
    if not isinstance(peercert, dict):
        return None
    subject = peercert.get("subject") or ()
    parts = [f"{key}={value}" for rdn in subject for key, value in rdn]
    return ",".join(parts) or None
