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

    def __post_init__(self) -> None:
        for name in ("max_xml", "max_body", "max_depth"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"option '{name}' must be a positive number (got {value})")
        if self.timeout <= 0:
            raise ValueError(f"option 'timeout' must be longer than 0 (got {self.timeout}s)")
        object.__setattr__(self, "actions", tuple(a for a in self.actions if a))
        object.__setattr__(self, "mtom_actions", tuple(a for a in self.mtom_actions if a))

    @property
    def wsdl_path(self) -> Path | None:
        return WSDL_DIR / self.wsdl if self.wsdl else None


def problems(options: SoapOptions, *, consumer: bool) -> list[str]:
    """What lint reports for a ``soap:`` endpoint on one side (the engine-port checks come from ``http:``)."""
    example = "soap://0.0.0.0:8080/xds/registry" if consumer else "soap://peer.example.org/xds/registry"
    extra = _service_problems(options) if consumer else []
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
