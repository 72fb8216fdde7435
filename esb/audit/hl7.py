"""What an HL7 v2 audit record needs from a message: MSH-3..6, MSH-10 and the QPD segment.

ITI-8/9/21 audit records name the source as MSH-3|MSH-4, the destination as
MSH-5|MSH-6, carry MSH-10 and, for queries, the QPD segment as sent. The
profile code has parsed the message already, but for its own purpose; these
few fields are read here directly (the separators come from MSH itself) so
that auditing never depends on, or fails with, a parser's view of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from esb.audit.events import Party, this_node


@dataclass(frozen=True)
class Header:
    sending: str = ""
    receiving: str = ""
    control_id: str = ""


def _segments(message: bytes) -> list[bytes]:
    return [s for s in message.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r") if s]


def _field(fields: list[bytes], n: int, comp: bytes) -> str:
    """MSH-n, first component; MSH-1 is the field separator itself, so MSH-n is ``fields[n - 1]``."""
    raw = fields[n - 1] if len(fields) >= n else b""
    return raw.split(comp)[0].decode("utf-8", "replace").strip()


def header(message: bytes) -> Header:
    """MSH-3|MSH-4, MSH-5|MSH-6 (namespace IDs) and MSH-10; empty strings when absent."""
    for seg in _segments(message):
        if seg.startswith(b"MSH") and len(seg) > 4:
            fields, comp = seg.split(seg[3:4]), seg[4:5] or b"^"
            return Header(
                f"{_field(fields, 3, comp)}|{_field(fields, 4, comp)}",
                f"{_field(fields, 5, comp)}|{_field(fields, 6, comp)}",
                _field(fields, 10, comp),
            )
    return Header()


def segment(message: bytes, name: str) -> bytes:
    """The first segment called ``name`` as sent (b"" when there is none)."""
    tag = name.encode("ascii")
    for seg in _segments(message):
        if seg[:3] == tag:
            return seg
    return b""


def host_of(peer: str) -> str | None:
    """``127.0.0.1:51234`` or ``[::1]:51234`` -> the host part."""
    if not peer:
        return None
    host = peer.rsplit(":", 1)[0] if peer.count(":") == 1 or peer.startswith("[") else peer
    return host.strip("[]") or None


def parties(message: bytes, headers: dict[str, str], peer_header: str = "mllp-peer") -> tuple[Party, Party, Header]:
    """Source (the sender and where it connected from) and destination (this node) of an inbound message."""
    head = header(message)
    source = Party(head.sending or "unknown", host_of(headers.get(peer_header, "")))
    return source, this_node(head.receiving or "esb-imaging"), head
