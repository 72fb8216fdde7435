"""HL7 v2 acknowledgements: build an ACK with MSA and ERR, read one back.

Built here rather than with ``hl7.Message.create_ack``: that one carries
neither MSH-18 (an ACK is written in the charset of the message it answers)
nor an ERR segment, and needs the whole original message parsed. The MSH
and ERR segments are written by :mod:`transforms.hl7v2.writer` in the
delimiters of the message answered; ERR follows its version
(:func:`transforms.hl7v2.writer.err`). MSA-3 repeats the text for receivers
that read only MSA.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from esb.errors import Hl7Error, ValidationError
from transforms.hl7v2.codec import Header, V2Message
from transforms.hl7v2.encoding import DEFAULT_ENCODING_CHARACTERS, escape, normalize_segments, unescape
from transforms.hl7v2.message import read_header
from transforms.hl7v2.writer import ERROR_CODES, err, msh, new_control_id

__all__ = [
    "ACCEPTED",
    "ACK_CODES",
    "ERROR_CODES",
    "Ack",
    "ErrorDetail",
    "build_ack",
    "commit_code",
    "failure_answer",
    "is_reply",
    "new_control_id",
    "read_ack",
]

ACK_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")
ACCEPTED = ("AA", "CA")
SEVERITIES = ("E", "W", "I", "F")
DEFAULT_VERSION = "2.5"
#: what a ValidationError's text says -> table 0357 code (first match wins; else 207)
VALIDATION_CODES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"message type|no MSH", re.I), "200"),
    (re.compile(r"trigger|event", re.I), "201"),
    (re.compile(r"missing|required|empty", re.I), "101"),
    (re.compile(r"data type|format|not a valid", re.I), "102"),
    (re.compile(r"table|code .* not (found|known)", re.I), "103"),
)


@dataclass(frozen=True)
class ErrorDetail:
    """What goes into ERR: a table 0357 code, text for people, severity and location (ERL)."""

    code: str = "207"
    text: str = ""
    severity: str = "E"
    #: ERL written with ^: segment^sequence^field[^repetition^component]
    location: str = ""


def commit_code(code: str) -> str:
    """The enhanced-mode accept acknowledgement code for an original-mode one (AA -> CA)."""
    return "C" + code[1:] if code.startswith("A") else code


def build_ack(
    header: Header | None,
    code: str,
    detail: ErrorDetail | None = None,
    *,
    control_id: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """The ACK for a message whose header is ``header`` (None: it had none we could read).

    Sender and receiver are swapped, MSH-10 is new, MSA-2 is the message's
    control id, version, processing id and MSH-18 are the message's.
    """
    if code not in ACK_CODES:
        raise ValueError(f"ACK code must be one of {'|'.join(ACK_CODES)} (got '{code}')")
    fs = header.field_separator if header and header.field_separator else "|"
    enc = header.encoding_characters if header and len(header.encoding_characters) >= 4 else DEFAULT_ENCODING_CHARACTERS
    version = header.version if header and header.version else DEFAULT_VERSION
    segments = [
        msh(
            sending_application=header.receiving_application if header else "",
            sending_facility=header.receiving_facility if header else "",
            receiving_application=header.sending_application if header else "",
            receiving_facility=header.sending_facility if header else "",
            message_type=enc[0].join(["ACK", header.trigger_event, "ACK"])
            if header and header.trigger_event
            else "ACK",
            version=version,
            processing_id=header.processing_id if header and header.processing_id else "P",
            charset=header.charset if header else "",
            control_id=control_id,
            now=now,
            field_separator=fs,
            encoding_characters=enc,
        )
    ]
    text = detail.text if detail else ""
    msa = [code, header.control_id if header else "", escape(text[:80], fs, enc) if detail else ""]
    segments.append("MSA" + fs + fs.join(msa).rstrip(fs))
    if detail is not None:
        segments.append(
            err(
                detail.code,
                detail.text,
                detail.severity,
                detail.location,
                version=version,
                field_separator=fs,
                encoding_characters=enc,
            )
        )
    return "\r".join(segments) + "\r"


def _hl7_error(error: BaseException | None) -> Hl7Error | None:
    """The Hl7Error behind an error, also when a step wrapped it (``raise ... from``)."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, Hl7Error):
            return error
        error, seen = error.__cause__, seen + 1
    return None


def failure_answer(error: BaseException | None, reply: Mapping[str, str]) -> tuple[str, ErrorDetail | None]:
    """ACK code and ERR content for a failed route.

    An :class:`Hl7Error` says it all; a :class:`ValidationError` is AR with a
    code chosen from its text; anything else is AE 207 naming only the error's
    class (its text may hold data the sender did not send). The route's
    ``on_error`` ``ack:``/``reply:`` (keys code, error, text, severity,
    location) has the last word.
    """
    code, detail = "AE", ErrorDetail("207", "application internal error")
    found = _hl7_error(error)
    if found is not None:
        code = found.ack_code
        detail = ErrorDetail(found.error_code, found.text, found.severity, found.location)
    elif isinstance(error, ValidationError):
        text = str(error)
        chosen = next((c for pattern, c in VALIDATION_CODES if pattern.search(text)), "207")
        code, detail = "AR", ErrorDetail(chosen, text)
    elif error is not None:
        detail = ErrorDetail("207", f"application internal error ({type(error).__name__})")
    wanted = str(reply.get("code", "")).upper()
    if wanted in ACK_CODES:
        code = wanted
    severity = str(reply.get("severity", detail.severity)).upper()
    detail = ErrorDetail(
        code=str(reply.get("error", detail.code)),
        text=str(reply.get("text", detail.text)),
        severity=severity if severity in SEVERITIES else detail.severity,
        location=str(reply.get("location", detail.location)),
    )
    return code, (None if code in ACCEPTED and "text" not in reply else detail)


def is_reply(body: bytes) -> bool:
    """An HL7 message with an MSA segment: an ACK or a query response (RSP) built by a service."""
    body = normalize_segments(body)
    return body.startswith(b"MSH") and b"\rMSA" in body


@dataclass(frozen=True)
class Ack:
    """An acknowledgement as read back by a sender."""

    code: str
    control_id: str
    text: str
    error_code: str
    header: Header


def read_ack(body: bytes, default_codec: str = "utf-8") -> Ack:
    """MSA-1, MSA-2 and the error (ERR-3 and ERR-8, or ERR-1 before v2.5, or MSA-3, unescaped) of an ACK."""
    body = normalize_segments(body)
    header = read_header(body, default_codec)
    message = V2Message(body, header.codec)
    msa = message.first("MSA")
    if msa is None:
        raise Hl7Error("the answer has no MSA segment", error_code="100", ack_code="AR")
    code, control_id, text, error_code = msa.raw(1), msa.raw(2), msa.raw(3), ""
    comp, sub = header.encoding_characters[:1] or "^", header.encoding_characters[3:4] or "&"
    err_segment = message.first("ERR")
    if err_segment is not None:
        coded = err_segment.raw(3).split(comp)
        if coded[0]:
            error_code = coded[0]
            text = err_segment.raw(8) or (coded[1] if len(coded) > 1 else "") or text
        else:
            legacy = err_segment.raw(1).split(comp)
            parts = legacy[3].split(sub) if len(legacy) > 3 else [""]
            error_code = parts[0]
            text = text or (parts[1] if len(parts) > 1 else "")
    text = unescape(text, header.field_separator or "|", header.encoding_characters)
    return Ack(code=code.upper(), control_id=control_id, text=text, error_code=error_code, header=header)
