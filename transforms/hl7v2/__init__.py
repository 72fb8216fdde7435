"""HL7 v2 helpers for routes and adapters: headers, charsets, escaping, acknowledgements."""

from transforms.hl7v2.ack import ACK_CODES, Ack, ErrorDetail, build_ack, failure_answer, is_reply, read_ack
from transforms.hl7v2.message import Header, codec_for, escape, parse_message, read_header, unescape

__all__ = [
    "ACK_CODES",
    "Ack",
    "ErrorDetail",
    "Header",
    "build_ack",
    "codec_for",
    "escape",
    "failure_answer",
    "is_reply",
    "parse_message",
    "read_ack",
    "read_header",
    "unescape",
]
