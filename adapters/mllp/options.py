"""Options of ``mllp:`` endpoints, and the lint checks on them.

One ``Options`` class serves both sides, each side-specific field tagged
``side`` in its metadata as for ``http:``, so lint reports an option set on the
side that ignores it instead of silently ignoring it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from adapters.http.tls import TlsSwitch, socket_problems
from esb.uri import Duration
from transforms.hl7v2.message import codec_for

MIB = 1024 * 1024
Policy = Literal["retry", "dead", "accept"]


def _meta(doc: str, side: Literal["from", "to"] | None = None) -> dict[str, str]:
    return {"doc": doc, "side": side} if side else {"doc": doc}


@dataclass(frozen=True, kw_only=True)
class MllpOptions(TlsSwitch):
    host: str = field(default="", metadata=_meta("Address to listen on (from) or to connect to (to)."))
    port: int = field(default=2575, metadata=_meta("TCP port; 0 (from, tests) picks a free one."))
    charset: str = field(
        default="UTF-8",
        metadata=_meta(
            "Character set of messages without MSH-18 (and of ACKs read back): an HL7 table 0211 name "
            "(UNICODE UTF-8, GB 18030-2000, 8859/1) or a codec name (UTF-8, GB18030, ISO-8859-1). "
            "MSH-18, when present, wins."
        ),
    )
    max_size: int = field(
        default=16 * MIB,
        metadata=_meta(
            "Largest frame in bytes. A larger message is skipped to its end, logged with the peer address "
            "and answered AR (from); a larger ACK fails the delivery (to)."
        ),
    )
    ack: Literal["original", "application"] = field(
        default="original",
        metadata=_meta(
            "original: ACK (AA, or CA in enhanced mode) as soon as the message is journaled; application: "
            "after the route completed, with the route's reply (an ACK/RSP built by a service) or AA/AE/AR.",
            "from",
        ),
    )
    ordered: bool = field(
        default=False,
        metadata=_meta(
            "Hand a connection's messages to the route one at a time: with ack=original the next message "
            "waits until the previous one's route completed (ack=application is ordered anyway).",
            "from",
        ),
    )
    dedup_window: Duration = field(
        default=Duration(600.0),
        metadata=_meta(
            "A message whose sending application, facility and control id (MSH-3/4/10) were seen within "
            "this time is ACKed again with the first answer's code but not processed again. Kept in the "
            "database, so it holds across nodes and restarts; 0 turns it off.",
            "from",
        ),
    )
    idle_timeout: Duration = field(
        default=Duration(1800.0),
        metadata=_meta("Close a connection that sent nothing for this long; 0: never.", "from"),
    )
    read_timeout: Duration = field(
        default=Duration(30.0),
        metadata=_meta("Close a connection whose started frame did not end within this time; 0: never.", "from"),
    )
    max_connections: int = field(
        default=256,
        metadata=_meta("Connections served at once; more are closed at once with a warning.", "from"),
    )
    timeout: Duration = field(
        default=Duration(30.0),
        metadata=_meta("Time allowed to connect, send and read the ACK; slower peers count as failed (retried).", "to"),
    )
    pool: int = field(default=2, metadata=_meta("Connections kept open to the peer and used at once.", "to"))
    on_ae: Policy = field(
        default="retry",
        metadata=_meta("An AE/CE answer: retry (with backoff), dead (dead letter at once) or accept.", "to"),
    )
    on_ar: Policy = field(
        default="dead",
        metadata=_meta("An AR/CR answer: retry (with backoff), dead (dead letter at once) or accept.", "to"),
    )

    def __post_init__(self) -> None:
        codec = codec_for(self.charset)
        if codec is None:
            raise ValueError(
                f"option 'charset': '{self.charset}' is not a supported character set "
                "(use e.g. UTF-8, GB18030, ISO-8859-1, or HL7 names UNICODE UTF-8, GB 18030-2000, 8859/1)"
            )
        for name in ("max_size", "pool", "max_connections"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"option '{name}' must be a positive number (got {value})")
        for name in ("timeout",):
            if getattr(self, name) <= 0:
                raise ValueError(f"option '{name}' must be longer than 0 (got {getattr(self, name)}s)")
        for name in ("dedup_window", "idle_timeout", "read_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"option '{name}' must be 0 (off) or longer (got {getattr(self, name)}s)")

    @property
    def codec(self) -> str:
        codec = codec_for(self.charset)
        assert codec is not None, "checked in __post_init__"
        return codec


def problems(options: MllpOptions, *, consumer: bool) -> list[str]:
    """What lint reports for an ``mllp:`` endpoint on one side."""
    example = "mllp://0.0.0.0:2575" if consumer else "mllp://peer.example.org:2575"
    return socket_problems(options, consumer=consumer, where="mllp:", example=example)
