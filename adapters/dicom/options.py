"""Options of ``dicom:`` endpoints, and the lint checks on them.

One ``Options`` class serves both sides, side-specific fields tagged ``side``
as for ``http:`` and ``mllp:``. ``ae_title`` is the SCP's title on either
side: ours when listening, the peer's when sending (``dicom://PACS@host:104``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from adapters.http.tls import TlsSwitch, socket_problems
from esb.uri import Duration

MIB = 1024 * 1024
DEFAULT_ARCHIVE = "dicom-archive"


def _meta(doc: str, side: Literal["from", "to"] | None = None) -> dict[str, str]:
    return {"doc": doc, "side": side} if side else {"doc": doc}


def ae_title_problem(name: str, value: str) -> str | None:
    """Why ``value`` is not an AE title (PS3.5 6.2: 1-16 characters, no backslash or control characters)."""
    if len(value) > 16:
        return f"option '{name}': AE title '{value}' is longer than 16 characters"
    if "\\" in value or any(ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        return f"option '{name}': AE title '{value}' may hold printable ASCII characters only, no backslash"
    if value and not value.strip():
        return f"option '{name}': AE title must not be only spaces"
    return None


@dataclass(frozen=True, kw_only=True)
class DicomOptions(TlsSwitch):
    host: str = field(default="", metadata=_meta("Address to listen on (from) or of the peer SCP (to)."))
    port: int = field(default=11112, metadata=_meta("TCP port; 0 (from, tests) picks a free one."))
    ae_title: str = field(
        default="",
        metadata=_meta(
            "AE title of the SCP: ours (from; callers must call it unless check_called_ae=false) or the peer's "
            "(to, also written dicom://AE_TITLE@host:port). Empty: the engine's listen.dicom_ae_title (from), "
            "ANY-SCP (to)."
        ),
    )
    max_pdu: int = field(
        default=4 * MIB,
        metadata=_meta(
            "Largest PDU we receive, in bytes; large PDUs cut the per-fragment cost of big images. 0: unlimited."
        ),
    )
    acse_timeout: Duration = field(
        default=Duration(30.0), metadata=_meta("Time allowed for association negotiation and release.")
    )
    dimse_timeout: Duration = field(
        default=Duration(60.0), metadata=_meta("Time allowed for a DIMSE message (e.g. a C-STORE response) to come.")
    )
    network_timeout: Duration = field(
        default=Duration(300.0), metadata=_meta("Close an association that sent nothing for this long.")
    )
    check_called_ae: bool = field(
        default=True,
        metadata=_meta("Reject associations that call another AE title than ae_title (reason 7).", "from"),
    )
    calling_aes: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "Calling AE titles allowed to associate (comma list); others are rejected (reason 3). Empty: any.", "from"
        ),
    )
    archive: str = field(
        default=DEFAULT_ARCHIVE,
        metadata=_meta(
            "Service whose archive answers C-FIND, C-MOVE and C-GET (from; empty: storage and verification "
            "only), or gives the instance to send when the message's file was moved into it (to; empty: never)."
        ),
    )
    worklist: str = field(
        default="",
        metadata=_meta("Service whose worklist answers Modality Worklist C-FIND (from; empty: no worklist).", "from"),
    )
    store_timeout: Duration = field(
        default=Duration(120.0),
        metadata=_meta(
            "How long a C-STORE waits for its route; later it is answered 0xA700 (send again) while the "
            "journaled message still completes.",
            "from",
        ),
    )
    max_associations: int = field(
        default=64, metadata=_meta("Associations served at once; more are rejected (transient).", "from")
    )
    reuse_port: bool = field(
        default=False,
        metadata=_meta(
            "Bind with SO_REUSEPORT so several engine processes share the port and the kernel spreads "
            "associations over them (pynetdicom does not gain from threads).",
            "from",
        ),
    )
    calling_ae: str = field(
        default="", metadata=_meta("Our AE title when calling; empty: the engine's listen.dicom_ae_title.", "to")
    )
    timeout: Duration = field(
        default=Duration(120.0),
        metadata=_meta("Time allowed to associate, send and get the C-STORE response; slower counts as failed.", "to"),
    )

    def __post_init__(self) -> None:
        for name in ("ae_title", "calling_ae"):
            problem = ae_title_problem(name, getattr(self, name))
            if problem:
                raise ValueError(problem)
        for title in self.calling_aes:
            problem = ae_title_problem("calling_aes", title)
            if problem or not title:
                raise ValueError(problem or "option 'calling_aes': empty AE title in the list")
        if self.max_pdu < 0:
            raise ValueError(f"option 'max_pdu' must be 0 (unlimited) or a number of bytes (got {self.max_pdu})")
        if self.max_associations <= 0:
            raise ValueError(f"option 'max_associations' must be a positive number (got {self.max_associations})")
        for name in ("acse_timeout", "dimse_timeout", "network_timeout", "store_timeout", "timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"option '{name}' must be longer than 0 (got {getattr(self, name)}s)")


def problems(options: DicomOptions, *, consumer: bool) -> list[str]:
    """What lint reports for a ``dicom:`` endpoint on one side."""
    example = "dicom://0.0.0.0:11112?ae_title=ESB" if consumer else "dicom://PACS@pacs.example.org:104"
    return socket_problems(options, consumer=consumer, where="dicom:", example=example)
