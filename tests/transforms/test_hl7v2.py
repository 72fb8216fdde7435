"""HL7 v2 helpers: header and charset reading, escaping, ACK building and reading, error mapping."""

from __future__ import annotations

import datetime as dt

import pytest

from esb.errors import Hl7Error, ValidationError
from transforms.hl7v2 import ErrorDetail, build_ack, codec_for, escape, failure_answer, is_reply, read_ack, unescape
from transforms.hl7v2.ack import commit_code
from transforms.hl7v2.message import check_header, normalize_segments, parse_header, parse_message, read_header

NOW = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
MSH = "MSH|^~\\&|HIS^1.2.3^ISO|HOSP|EMPI|REGION|20261129120000||ADT^A08^ADT_A01|C-7|P|2.5.1|||AL|NE||{}\r"


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("UNICODE UTF-8", "utf-8"),
        ("GB 18030-2000", "gb18030"),
        ("8859/1", "iso-8859-1"),
        ("ISO-8859-1", "iso-8859-1"),
        ("gb18030", "gb18030"),
        ("utf8", "utf-8"),
        ("UTF-16", None),
        ("EBCDIC-NOPE", None),
        ("", None),
    ],
)
def test_charset_names(name: str, codec: str | None) -> None:
    assert codec_for(name) == codec


def test_header_fields_and_the_declared_charset() -> None:
    body = (MSH.format("GB 18030-2000~UNICODE UTF-8") + "PID|1||1||张^三\r").encode("gb18030")
    header = read_header(body)
    assert (header.sending_application, header.sending_facility) == ("HIS^1.2.3^ISO", "HOSP")
    assert (header.message_type, header.trigger_event, header.structure) == ("ADT^A08", "A08", "ADT_A01")
    assert (header.control_id, header.version, header.processing_id) == ("C-7", "2.5.1", "P")
    assert header.enhanced_mode and (header.accept_ack_type, header.application_ack_type) == ("AL", "NE")
    assert (header.charset, header.codec) == ("GB 18030-2000", "gb18030")
    assert header.exchange_headers()["charset"] == "gb18030"
    assert str(parse_message(body).segment("PID")(5)) == "张^三"


def test_header_problems_are_ar_with_their_hl7_code() -> None:
    with pytest.raises(Hl7Error) as no_msh:
        parse_header(b"PID|1\r")
    assert (no_msh.value.ack_code, no_msh.value.error_code) == ("AR", "100")
    unsupported = parse_header(MSH.format("UNICODE UTF-16").encode())
    problem = check_header(unsupported, b"")
    assert problem is not None and (problem.error_code, problem.location) == ("103", "MSH^1^18")
    latin = MSH.format("").replace("|||AL|NE||", "").encode() + "PID|1||1||Müller\r".encode("latin-1")
    problem = check_header(parse_header(latin), latin)
    assert problem is not None and problem.error_code == "102" and "not valid utf-8" in problem.text
    no_id = b"MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5\r"
    problem = check_header(parse_header(no_id), no_id)
    assert problem is not None and (problem.error_code, problem.location) == ("101", "MSH^1^10")


def test_segments_ended_by_line_feeds_are_normalized() -> None:
    assert normalize_segments(b"\n\nMSH|a\r\nPID|b\nPV1|c\n") == b"MSH|a\rPID|b\rPV1|c\r"


def test_escape_touches_delimiters_only() -> None:
    assert escape("a|b^c~d\\e&f 张三") == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f 张三"
    assert unescape(escape("a|b^c~d\\e&f 张三")) == "a|b^c~d\\e&f 张三"
    assert escape("a#b", "#", "$%!@") == "a!F!b"


def test_ack_v25_has_err2_err3_err4_and_err8() -> None:
    header = read_header(MSH.format("UNICODE UTF-8").encode())
    detail = ErrorDetail("101", "PID-3 | missing", "E", "PID^1^3^1^4")
    ack = build_ack(header, "AE", detail, control_id="A-1", now=NOW)
    assert ack == (
        "MSH|^~\\&|EMPI|REGION|HIS^1.2.3^ISO|HOSP|20261129120000+0800||ACK^A08^ACK|A-1|P|2.5.1||||||UNICODE UTF-8\r"
        "MSA|AE|C-7|PID-3 \\F\\ missing\r"
        "ERR||PID^1^3^1^4|101^Required field missing^HL70357|E||||PID-3 \\F\\ missing\r"
    )
    back = read_ack(ack.encode())
    assert (back.code, back.control_id, back.error_code, back.text) == ("AE", "C-7", "101", "PID-3 | missing")
    assert is_reply(ack.encode()) and not is_reply(MSH.format("").encode())


def test_ack_before_v25_uses_err1_and_a_minimal_ack_needs_no_header() -> None:
    header = read_header(b"MSH|^~\\&|HIS|HOSP|EMPI|REGION|2026||ADT^A01|C-1|P|2.3.1\r")
    ack = build_ack(header, "AR", ErrorDetail("204", "unknown domain", location="PID^1^3"), control_id="X", now=NOW)
    assert ack.endswith("MSA|AR|C-1|unknown domain\rERR|PID^1^3^204&Unknown key identifier&HL70357\r")
    back = read_ack(ack.encode())
    assert (back.error_code, back.text) == ("204", "unknown domain")
    minimal = build_ack(None, "AR", ErrorDetail("100", "no MSH"), control_id="Y", now=NOW)
    assert minimal.startswith("MSH|^~\\&|||||20261129120000+0800||ACK|Y|P|2.5\rMSA|AR||no MSH\r")
    assert build_ack(header, "AA", control_id="Z", now=NOW).endswith("|ACK^A01^ACK|Z|P|2.3.1\rMSA|AA|C-1\r")
    assert commit_code("AE") == "CE"
    with pytest.raises(ValueError, match="ACK code must be one of AA"):
        build_ack(header, "OK")


def test_failure_answer_maps_errors_and_lets_on_error_decide() -> None:
    hl7 = Hl7Error("no such domain", error_code="204", location="PID^1^3", ack_code="AE", severity="W")
    assert failure_answer(hl7, {}) == ("AE", ErrorDetail("204", "no such domain", "W", "PID^1^3"))
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = hl7
    assert failure_answer(wrapped, {})[1] == ErrorDetail("204", "no such domain", "W", "PID^1^3")
    assert failure_answer(ValidationError("PID-3 is missing"), {}) == ("AR", ErrorDetail("101", "PID-3 is missing"))
    code, detail = failure_answer(ValidationError("line 3: bad"), {})
    assert (code, detail and detail.code) == ("AR", "207")
    assert failure_answer(KeyError("x"), {}) == ("AE", ErrorDetail("207", "application internal error (KeyError)"))
    chosen = failure_answer(KeyError("x"), {"code": "ar", "text": "policy", "error": "206", "severity": "W"})
    assert chosen == ("AR", ErrorDetail("206", "policy", "W"))
    assert failure_answer(KeyError("x"), {"code": "AA"}) == ("AA", None)
    assert failure_answer(KeyError("x"), {"code": "XX"})[0] == "AE"
