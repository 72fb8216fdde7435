"""HL7 v2 messages as the MLLP adapter takes them: the MSH header read before the body is trusted.

The character set is named inside the bytes (MSH-18), so the MSH segment is
read on its own first: MSH-18 from its raw bytes, then the segment decoded
with that codec and split by :mod:`transforms.hl7v2.codec` (the same
:class:`Header` the profiles read; python-hl7's ``hl7.parse`` of MSH alone
costs about 70 us against 10 here). Escaping and character sets live in
:mod:`transforms.hl7v2.encoding`; their names are re-exported here.
"""

from __future__ import annotations

from typing import Any

import hl7

from esb.errors import Hl7Error
from transforms.hl7v2.codec import Header, Segment, delimiters
from transforms.hl7v2.encoding import (
    CHARSETS,
    DEFAULT_ENCODING_CHARACTERS,
    HL7_NAMES,
    codec_for,
    declared_charset,
    escape,
    first_segment,
    normalize_segments,
    unescape,
)

__all__ = [
    "CHARSETS",
    "DEFAULT_ENCODING_CHARACTERS",
    "HL7_NAMES",
    "Header",
    "check_header",
    "codec_for",
    "declared_charset",
    "escape",
    "first_segment",
    "normalize_segments",
    "parse_header",
    "parse_message",
    "read_header",
    "unescape",
]


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
    text = msh.decode(codec or default_codec, errors="replace")
    separators, esc = delimiters(text)
    return Header.of(Segment(text, 1, separators, esc), codec)


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
    """A whole message as an ``hl7.Message``, decoded per MSH-18 (for transforms written against python-hl7)."""
    body = normalize_segments(body)
    codec = codec_for(declared_charset(first_segment(body))) or default_codec
    return hl7.parse(body.decode(codec))
