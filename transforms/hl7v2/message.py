"""HL7 v2 message helpers over python-hl7: the MSH header, the character set, escaping.

python-hl7 parses text, so bytes must be decoded first, yet the character set
is named inside those bytes (MSH-18). The MSH segment is therefore read twice:
its raw bytes are split on the field separator to find MSH-18 (the delimiters
and the table 0211 names are ASCII, and every character set accepted here is
ASCII-compatible), then the whole message is decoded with that codec and the
MSH segment is parsed by python-hl7. UTF-16 and UTF-32 are refused: in those
the bytes of "MSH" are not ASCII, so no receiver could find the header.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

import hl7

from esb.errors import Hl7Error

#: HL7 table 0211 (alternate character sets) -> Python codec. "UNICODE" alone is
#: read as UTF-8, which is what senders that write it mean in practice.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "iso-8859-1",
    "ISO IR100": "iso-8859-1",
    "8859/2": "iso-8859-2",
    "8859/3": "iso-8859-3",
    "8859/4": "iso-8859-4",
    "8859/5": "iso-8859-5",
    "8859/6": "iso-8859-6",
    "8859/7": "iso-8859-7",
    "8859/8": "iso-8859-8",
    "8859/9": "iso-8859-9",
    "8859/15": "iso-8859-15",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc_kr",
    "BIG-5": "big5",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
}
#: what MSH-18 says for a codec, when an ACK must name the charset it is written in
HL7_NAMES: dict[str, str] = {"utf-8": "UNICODE UTF-8", "gb18030": "GB 18030-2000", "iso-8859-1": "8859/1"}
#: codecs' own names (iso8859-1) -> the spelling used in CHARSETS and exchange headers (iso-8859-1)
_CANONICAL = {codecs.lookup(codec).name: codec for codec in CHARSETS.values()}
DEFAULT_ENCODING_CHARACTERS = "^~\\&"
_PROBE = "MSH|^~\\&"


def codec_for(name: str) -> str | None:
    """The Python codec for a table 0211 name or a codec name seen in the wild (``GB18030``).

    None when unknown or not ASCII-compatible (UTF-16/32, ISO-2022 shifts).
    """
    wanted = name.strip()
    if not wanted:
        return None
    mapped = CHARSETS.get(wanted.upper())
    if mapped is not None:
        return mapped
    try:
        info = codecs.lookup(wanted)
        ascii_compatible = _PROBE.encode(info.name) == _PROBE.encode("ascii")
    except (LookupError, UnicodeError):
        return None
    return _CANONICAL.get(info.name, info.name) if ascii_compatible else None


def normalize_segments(body: bytes) -> bytes:
    """CR-terminated segments: files and some senders end segments with LF or CRLF.

    HL7 allows only CR; python-hl7 would read ``\\nPID`` as a segment named
    ``\\nPID``. Leading whitespace before MSH is dropped for the same reason.
    """
    if b"\n" in body:
        body = body.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return body.lstrip(b"\r\t ")


def first_segment(body: bytes) -> bytes:
    end = body.find(b"\r")
    return body if end < 0 else body[:end]


def declared_charset(msh: bytes) -> str:
    """MSH-18 (its first repetition) read from the raw MSH bytes, before decoding."""
    if len(msh) < 8:
        return ""
    text = msh.decode("latin-1")
    fields = text.split(text[3])
    if len(fields) < 18:
        return ""
    repetition = text[5] if len(text) > 5 else "~"
    return fields[17].split(repetition)[0].strip()


@dataclass(frozen=True)
class Header:
    """The MSH segment of a message, each field as written (still escaped)."""

    field_separator: str
    encoding_characters: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_code: str
    trigger_event: str
    structure: str
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str
    application_ack_type: str
    #: MSH-18 as written ("" when absent)
    charset: str
    #: the Python codec the message was decoded with
    codec: str

    @property
    def message_type(self) -> str:
        """``ADT^A01``: MSH-9.1 and 9.2 joined the way routes and validators write them."""
        return f"{self.message_code}^{self.trigger_event}" if self.trigger_event else self.message_code

    @property
    def enhanced_mode(self) -> bool:
        """MSH-15 or MSH-16 valued: the sender asked for enhanced acknowledgement rules."""
        return bool(self.accept_ack_type or self.application_ack_type)

    def exchange_headers(self) -> dict[str, str]:
        return {
            "hl7-message-type": self.message_type,
            "hl7-trigger": self.trigger_event,
            "hl7-control-id": self.control_id,
            "hl7-version": self.version,
            "hl7-sending-application": self.sending_application,
            "hl7-sending-facility": self.sending_facility,
            "hl7-receiving-application": self.receiving_application,
            "hl7-receiving-facility": self.receiving_facility,
            "charset": self.codec,
        }


def _field(segment: Any, number: int) -> str:
    try:
        return str(segment(number))
    except IndexError:
        return ""


def parse_header(body: bytes, default_codec: str = "utf-8") -> Header:
    """The MSH segment of a CR-terminated message; :class:`Hl7Error` (AR 100) when there is none.

    Nothing is judged here beyond "there is a header"; :func:`check_header`
    does that, so that a refused message can still be answered with an ACK
    addressed to its sender.
    """
    msh = first_segment(body)
    if not msh.startswith(b"MSH") or len(msh) < 8:
        raise Hl7Error("the message does not start with an MSH segment", error_code="100", ack_code="AR")
    declared = declared_charset(msh)
    codec = (codec_for(declared) or "") if declared else default_codec
    try:
        segment = hl7.parse(msh.decode(codec or default_codec, errors="replace")).segment("MSH")
    except Exception as exc:  # python-hl7 raises ParseException, IndexError, ... on odd delimiters
        raise Hl7Error(
            f"the MSH segment does not parse ({type(exc).__name__})", error_code="100", ack_code="AR"
        ) from None
    components = _field(segment, 9).split(_field(segment, 2)[:1] or "^")
    return Header(
        field_separator=_field(segment, 1),
        encoding_characters=_field(segment, 2),
        sending_application=_field(segment, 3),
        sending_facility=_field(segment, 4),
        receiving_application=_field(segment, 5),
        receiving_facility=_field(segment, 6),
        message_code=components[0],
        trigger_event=components[1] if len(components) > 1 else "",
        structure=components[2] if len(components) > 2 else "",
        control_id=_field(segment, 10),
        processing_id=_field(segment, 11),
        version=_field(segment, 12),
        accept_ack_type=_field(segment, 15),
        application_ack_type=_field(segment, 16),
        charset=declared,
        codec=codec,
    )


def check_header(header: Header, body: bytes) -> Hl7Error | None:
    """Why a message with this header cannot be taken (AR), or None.

    Only MSH is judged: the adapter answers for the transport, and the route's
    ``validate`` step looks at the rest. The whole body must decode, though,
    since a name mangled by a wrong charset would reach the patient index.
    """
    if not header.codec:
        return Hl7Error(
            f"MSH-18 character set '{header.charset[:40]}' is not supported "
            "(use e.g. UNICODE UTF-8, GB 18030-2000, 8859/1)",
            error_code="103",
            location="MSH^1^18",
            ack_code="AR",
        )
    for number, value in ((9, header.message_code), (10, header.control_id)):
        if not value:
            return Hl7Error(
                f"MSH-{number} is required and empty", error_code="101", location=f"MSH^1^{number}", ack_code="AR"
            )
    try:
        body.decode(header.codec)
    except UnicodeDecodeError as exc:
        return Hl7Error(
            f"the message is not valid {header.codec} (byte {exc.start}); set MSH-18 or the route's charset",
            error_code="102",
            ack_code="AR",
        )
    return None


def read_header(body: bytes, default_codec: str = "utf-8") -> Header:
    """:func:`parse_header` and :func:`check_header` in one: the header, or :class:`Hl7Error`."""
    header = parse_header(body, default_codec)
    problem = check_header(header, body)
    if problem is not None:
        raise problem
    return header


def parse_message(body: bytes, default_codec: str = "utf-8") -> Any:
    """A whole message as an ``hl7.Message``, decoded per MSH-18 (for transforms)."""
    body = normalize_segments(body)
    codec = codec_for(declared_charset(first_segment(body))) or default_codec
    return hl7.parse(body.decode(codec))


def escape(text: str, field_separator: str = "|", encoding_characters: str = DEFAULT_ENCODING_CHARACTERS) -> str:
    """Escape the delimiters (\\F\\ \\S\\ \\R\\ \\E\\ \\T\\) and CR in a value.

    Hand-written because ``hl7.util.escape`` also turns every non-ASCII
    character into a ``\\Xhh\\`` escape, which mangles names in UTF-8 and
    GB18030 messages where they may be written as they are.
    """
    chars = (encoding_characters + DEFAULT_ENCODING_CHARACTERS[len(encoding_characters) :])[:4]
    component, repetition, esc, subcomponent = chars[0], chars[1], chars[2], chars[3]
    table = {esc: "E", field_separator: "F", component: "S", repetition: "R", subcomponent: "T", "\r": ".br"}
    if not any(c in table for c in text):
        return text
    return "".join(f"{esc}{table[c]}{esc}" if c in table else c for c in text)


def unescape(text: str, field_separator: str = "|", encoding_characters: str = DEFAULT_ENCODING_CHARACTERS) -> str:
    """Undo HL7 escapes in a value (python-hl7's rules: delimiters, hex, highlighting)."""
    chars = (encoding_characters + DEFAULT_ENCODING_CHARACTERS[len(encoding_characters) :])[:4]
    container = hl7.Message(separators="\r" + field_separator + chars[1] + chars[0] + chars[3], esc=chars[2])
    return str(container.unescape(text))
