"""Options of ``soap:`` endpoints, and the lint checks on them.

One ``Options`` class serves both sides, side-specific fields tagged ``side``
as for ``http:``, so lint reports an option set where it is ignored. TLS is the
``mllp:`` way (``tls=true`` plus PEM files), since a SOAP endpoint usually
shares the engine's plain HTTP port and TLS needs a port of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from adapters.http.tls import TlsSwitch, socket_problems
from adapters.soap.envelope import MAX_DEPTH, MAX_XML
from esb.settings import PACKAGE_ROOT
from esb.uri import Duration

MIB = 1024 * 1024
#: where ``wsdl=NAME`` files live
WSDL_DIR = PACKAGE_ROOT / "wsdl"


def _meta(doc: str, side: Literal["from", "to"] | None = None) -> dict[str, str]:
    return {"doc": doc, "side": side} if side else {"doc": doc}


@dataclass(frozen=True, kw_only=True)
class SoapOptions(TlsSwitch):
    host: str = field(default="", metadata=_meta("Address to listen on (from) or to connect to (to)."))
    port: int = field(default=80, metadata=_meta("TCP port; 0 in tests picks a free one (shared with the engine's)."))
    path: str = field(default="/", metadata=_meta("URL path served (from) or called (to)."))
    wsdl: str | None = field(
        default=None,
        metadata=_meta(
            "WSDL served at PATH?wsdl: a file name in wsdl/ (e.g. xds-registry.wsdl); its soap:address is "
            "rewritten to the URL asked for and its schema imports are served at PATH?xsd=...",
            "from",
        ),
    )
    actions: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "WS-Addressing actions accepted (comma list); others get a Fault wsa:ActionNotSupported. Empty: any.",
            "from",
        ),
    )
    mtom_actions: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "Actions that must come MTOM-packaged (multipart/related; type=application/xop+xml), e.g. "
            "ITI-41 and ITI-43; a plain SOAP request for one gets a Sender Fault.",
            "from",
        ),
    )
    max_xml: int = field(
        default=MAX_XML,
        metadata=_meta(
            "Largest SOAP envelope in bytes (a plain message, or the root part of an MTOM one); larger "
            "requests get a Fault (413) and are not journaled."
        ),
    )
    max_body: int = field(
        default=1024 * MIB,
        metadata=_meta(
            "Largest message in bytes, MTOM parts included (parts are streamed to disk, never held in memory); "
            "larger requests get a Fault (413) and are not journaled."
        ),
    )
    max_depth: int = field(
        default=MAX_DEPTH, metadata=_meta("Deepest element nesting accepted in an envelope; deeper gets a Fault.")
    )
    action: str = field(
        default="",
        metadata=_meta("WS-Addressing Action of the request; default: the message's soap-action header.", "to"),
    )
    version: Literal["1.2", "1.1"] = field(default="1.2", metadata=_meta("SOAP version of requests.", "to"))
    mtom: bool = field(
        default=False,
        metadata=_meta("Send MTOM even without attachments (a message with attachments is always MTOM).", "to"),
    )
    timeout: Duration = field(
        default=Duration(30.0),
        metadata=_meta("Time allowed for the whole call; slower peers count as failed (retried).", "to"),
    )
    wss: Literal["none", "verify", "require"] = field(
        default="none",
        metadata=_meta(
            "WS-Security signatures: verify checks a signed request (Timestamp and Body signed with an X.509 "
            "token, exclusive c14n, SHA-256 or better) and refuses a bad one; require also refuses unsigned ones.",
            "from",
        ),
    )
    wss_cafile: str | None = field(
        default=None, metadata=_meta("PEM CA bundle signer certificates must chain to (needed with wss).", "from")
    )
    wss_peers: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "Signers accepted (subject:DN, cn:NAME or sha256:FINGERPRINT, comma list); empty: any the CA vouches for.",
            "from",
        ),
    )
    wss_username: Literal["none", "optional", "required"] = field(
        default="none",
        metadata=_meta(
            "wsse:UsernameToken (PasswordText, checked against the engine's users; PasswordDigest is refused): "
            "the user becomes the message's auth-user.",
            "from",
        ),
    )
    wss_window: Duration = field(
        default=Duration(300.0),
        metadata=_meta("Oldest wsu:Timestamp accepted, and how long signatures are kept to refuse replays.", "from"),
    )
    wss_sign: bool = field(
        default=False,
        metadata=_meta("Sign requests (WS-Security: Timestamp and Body, X.509 token) with wss_certfile.", "to"),
    )
    wss_certfile: str | None = field(default=None, metadata=_meta("PEM certificate requests are signed with.", "to"))
    wss_keyfile: str | None = field(
        default=None, metadata=_meta("PEM private key of wss_certfile; default: the key inside it.", "to")
    )
    wss_user: str | None = field(
        default=None, metadata=_meta("Add a wsse:UsernameToken (PasswordText, with Nonce) for this user.", "to")
    )
    wss_password_env: str | None = field(
        default=None,
        metadata=_meta(
            "Environment variable holding wss_user's password (read when sending: never part of the URI, "
            "which is stored with every delivery).",
            "to",
        ),
    )

    def __post_init__(self) -> None:
        for name in ("max_xml", "max_body", "max_depth"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"option '{name}' must be a positive number (got {value})")
        if self.timeout <= 0:
            raise ValueError(f"option 'timeout' must be longer than 0 (got {self.timeout}s)")
        if self.wss_window <= 0:
            raise ValueError(f"option 'wss_window' must be longer than 0 (got {self.wss_window}s)")
        object.__setattr__(self, "actions", tuple(a for a in self.actions if a))
        object.__setattr__(self, "mtom_actions", tuple(a for a in self.mtom_actions if a))

    @property
    def wsdl_path(self) -> Path | None:
        return WSDL_DIR / self.wsdl if self.wsdl else None


def problems(options: SoapOptions, *, consumer: bool) -> list[str]:
    """What lint reports for a ``soap:`` endpoint on one side (the engine-port checks come from ``http:``)."""
    example = "soap://0.0.0.0:8080/xds/registry" if consumer else "soap://peer.example.org/xds/registry"
    extra = (_service_problems(options) if consumer else []) + _wss_problems(options, consumer=consumer)
    return socket_problems(options, consumer=consumer, where="soap:", example=example, extra=extra)


def _service_problems(options: SoapOptions) -> list[str]:
    """The served side's WSDL file and MTOM actions."""
    where, found = "soap:", []
    if options.wsdl:
        path = options.wsdl_path
        assert path is not None
        if Path(options.wsdl).name != options.wsdl:
            found.append(f"{where} option 'wsdl' names a file in wsdl/, not a path (got '{options.wsdl}')")
        elif not path.is_file():
            known = ", ".join(sorted(p.name for p in WSDL_DIR.glob("*.wsdl"))) or "none"
            found.append(f"{where} option 'wsdl': no file '{options.wsdl}' in wsdl/ (there: {known})")
    if options.actions:
        found.extend(
            f"{where} mtom_actions names '{a}', which is not in actions" for a in options.mtom_actions
            if a not in options.actions
        )  # fmt: skip
    return found


def _wss_problems(options: SoapOptions, *, consumer: bool) -> list[str]:
    """WS-Security: the files each side needs, the peers list, user and password together."""
    from esb.security.peers import peers_problem

    where, found = "soap:", []
    if consumer:
        if (options.wss != "none" or options.wss_peers) and not options.wss_cafile:
            found.append(f"{where} wss={options.wss} needs wss_cafile (the CA that signer certificates chain to)")
        if options.wss_peers and (problem := peers_problem(options.wss_peers)):
            found.append(f"{where} option 'wss_peers': {problem}")
        files = [("wss_cafile", options.wss_cafile)]
    else:
        if options.wss_sign and not options.wss_certfile:
            found.append(f"{where} wss_sign=true needs wss_certfile (and wss_keyfile unless the key is inside it)")
        if (options.wss_certfile or options.wss_keyfile) and not options.wss_sign:
            found.append(f"{where} option '{'wss_certfile' if options.wss_certfile else 'wss_keyfile'}' needs "
                         "wss_sign=true")  # fmt: skip
        if bool(options.wss_user) != bool(options.wss_password_env):
            found.append(f"{where} wss_user and wss_password_env go together (the password is read from the latter)")
        files = [("wss_certfile", options.wss_certfile), ("wss_keyfile", options.wss_keyfile)]
    found.extend(
        f"{where} option '{name}': no file '{path}'" for name, path in files if path and not Path(path).is_file()
    )
    return found
