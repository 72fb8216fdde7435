"""HL7 v2 messages in: a typed, regular view of a message's fields, and the replies' headers.

python-hl7 reads the delimiters (its parse plan handles MSH-1/MSH-2 and short
encoding-character lists); the fields are then split here, lazily, field by
field. Building python-hl7's whole container tree costs about 0.45 ms for an
ordinary ADT message, a quarter of the CPU an end-to-end feed may spend per
message at 1,000 messages/s on two cores, while splitting only the fields a
mapping reads costs a few microseconds (see :mod:`transforms.hl7v2.encoding`
for why python-hl7's ``unescape`` is not used either). The MSH segment of every
message, MLLP's or a profile's, is read into the one :class:`Header` here.

Every field has one shape (repetitions -> components -> subcomponents,
unescaped); :mod:`transforms.hl7v2.writer` writes segments back. Problems
with the message itself become :class:`esb.errors.Hl7Error` with the ERR
location (ERL ``SEG^seq^field^rep^comp``) and HL7 table 0357 code, so the MLLP
side can answer AE/AR with an ERR segment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import hl7.parser

from esb.errors import Hl7Error
from transforms.hl7v2.encoding import (
    DEFAULT_ENCODING_CHARACTERS,
    codec_for,
    declared_charset,
    first_segment,
    normalize_segments,
    unescape,
)
from transforms.hl7v2.writer import Raw, err_segment, join, msh, render, render_field

#: one repetition of a field: its components, each a list of subcomponents
Rep: TypeAlias = list[list[str]]
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_LINES = re.compile(r"\r\n|\r|\n")


class Segment:
    """One segment; ``seq`` is its occurrence number among segments of that name (ERR location)."""

    def __init__(self, line: str, seq: int, separators: str, esc: str) -> None:
        fields = line.split(separators[1])
        if fields[0] == "MSH":
            fields.insert(1, separators[1])
        self._fields = fields
        self._separators = separators
        self._esc = esc
        #: the field separator and MSH-2 order of the delimiters, as escaping takes them
        self._delimiters = (separators[1], separators[3] + separators[2] + esc + separators[4])
        self._cache: dict[int, list[Rep]] = {}
        self.name = fields[0]
        self.seq = seq

    def __len__(self) -> int:
        """The number of the last field present."""
        return len(self._fields) - 1

    def reps(self, n: int) -> list[Rep]:
        """Field ``n`` (1-based, MSH-n as in the standard) as repetitions of components of subcomponents."""
        cached = self._cache.get(n)
        if cached is not None:
            return cached
        text = self._fields[n] if 0 < n < len(self._fields) else ""
        if not text:
            out: list[Rep] = []
        elif self.name == "MSH" and n in (1, 2):
            out = [[[text]]]
        elif not any(c in text for c in self._separators[2:]):
            out = [[[unescape(text, *self._delimiters)]]]
        else:
            rep_sep, comp_sep, sub_sep = self._separators[2], self._separators[3], self._separators[4]
            fs, enc = self._delimiters
            out = [
                [[unescape(sub, fs, enc) for sub in comp.split(sub_sep)] for comp in rep.split(comp_sep)]
                for rep in text.split(rep_sep)
            ]
        self._cache[n] = out
        return out

    def raw(self, n: int) -> str:
        """Field ``n`` as written, still escaped and in the message's own delimiters ("" when absent)."""
        return self._fields[n] if 0 < n < len(self._fields) else ""

    def value(self, n: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        """One leaf, "" when absent (HL7 treats absent and empty alike)."""
        reps = self.reps(n)
        try:
            return reps[rep - 1][comp - 1][sub - 1]
        except IndexError:
            return ""

    def component(self, n: int, comp: int, rep: int = 1) -> str:
        """A whole component with its subcomponents joined back by ``&`` (for ST components that held one)."""
        reps = self.reps(n)
        try:
            return "&".join(reps[rep - 1][comp - 1])
        except IndexError:
            return ""

    def location(self, field: int | None = None, rep: int | None = None, comp: int | None = None) -> str:
        """The ERR-2 error location (ERL) of this segment or one of its parts."""
        parts = [self.name, str(self.seq)]
        for value in (field, rep, comp):
            if value is None:
                break
            parts.append(str(value))
        return "^".join(parts)

    def wire(self, n: int) -> str:
        """Field ``n`` rendered again with the standard delimiters (to echo it, e.g. QPD or MSH-3)."""
        return render_field(self.reps(n))

    def render(self) -> str:
        """The whole segment with the standard delimiters (an echo of what was received)."""
        return render(self.name, [self.reps(n) for n in range(1, len(self) + 1)])


def delimiters(msh: str) -> tuple[str, str]:
    """The separators (segment, field, repetition, component, subcomponent) and escape of an MSH line.

    python-hl7's parse plan reads them (it handles short MSH-2 lists);
    :class:`Hl7Error` AR 100 when it cannot.
    """
    try:
        plan = hl7.parser.create_parse_plan(msh)
    except Exception as exc:  # python-hl7 raises bare ParseException/IndexError on broken headers
        raise Hl7Error(
            f"the MSH delimiters cannot be read ({type(exc).__name__})", error_code="100", ack_code="AR"
        ) from exc
    return str(plan.separators), str(plan.esc)


class V2Message:
    """A parsed HL7 v2 message: segments by name with occurrence numbers."""

    def __init__(self, text: str | bytes, encoding: str | None = None) -> None:
        codec = encoding or "utf-8"
        if isinstance(text, bytes):
            charset = codec = encoding or _sniff_charset(text)
            try:
                text = text.decode(charset)
            except UnicodeDecodeError as exc:
                raise Hl7Error(
                    f"the message is not valid {charset} (byte {exc.start})",
                    error_code="102",
                    location="MSH^1^18",
                    ack_code="AR",
                ) from exc
        lines = [line for line in _LINES.split(text.strip("\x0b\x1c\r\n ")) if line.strip()]
        if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
            raise Hl7Error(
                "the message must start with an MSH segment and its encoding characters",
                error_code="100",
                location="MSH",
                ack_code="AR",
            )
        separators, esc = delimiters(lines[0])
        if len(set(separators + esc)) != 6:
            raise Hl7Error("MSH-1 and MSH-2 must name six distinct delimiters", error_code="100", ack_code="AR")
        counts: dict[str, int] = {}
        self.segments: list[Segment] = []
        for position, line in enumerate(lines, start=1):
            name = line[:3]
            if not _SEGMENT_ID.fullmatch(name) or line[3:4] not in ("", separators[1]):
                raise Hl7Error(
                    f"segment {position} has no valid segment ID (3 upper-case letters or digits and a field "
                    "separator)",
                    error_code="100",
                    ack_code="AR",
                )
            counts[name] = counts.get(name, 0) + 1
            self.segments.append(Segment(line, counts[name], separators, esc))
        self.header = Header.of(self.segments[0], codec)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    def first(self, name: str) -> Segment | None:
        for segment in self.segments:
            if segment.name == name:
                return segment
        return None

    def require(self, name: str, why: str) -> Segment:
        """The first segment ``name``; missing is error 100 (segment sequence error / required segment missing)."""
        segment = self.first(name)
        if segment is None:
            raise Hl7Error(f"required segment {name} is missing ({why})", error_code="100", location=name)
        return segment


def _sniff_charset(data: bytes) -> str:
    """The codec MSH-18 names, read from the raw bytes, so GB18030 feeds decode right (UTF-8 by default)."""
    return codec_for(declared_charset(first_segment(normalize_segments(data)))) or "utf-8"


@dataclass(frozen=True)
class Header:
    """The MSH segment of a message, each field as written (still escaped, in the message's delimiters).

    As written because an ACK echoes them to their sender in its own
    delimiters; :meth:`wire` gives them in the standard ones for replies that
    are written with those. Empty fields stay empty: defaults (version 2.5,
    processing ID P) are the reply writer's business.
    """

    field_separator: str
    encoding_characters: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    #: MSH-7 (HL7 TS as sent)
    timestamp: str
    message_code: str
    trigger_event: str
    structure: str
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str
    application_ack_type: str
    #: MSH-18 as written, its first repetition ("" when absent)
    charset: str
    #: the Python codec the message was decoded with
    codec: str
    #: ``APP^FACILITY`` by namespace IDs (universal IDs when those are empty), unescaped: who sent the message
    sending_system: str

    @staticmethod
    def of(msh: Segment, codec: str) -> Header:
        """The header of a parsed MSH segment decoded with ``codec``."""
        fs, enc = msh.raw(1), msh.raw(2)
        components = msh.raw(9).split(enc[:1] or "^")
        app = msh.value(3) or msh.value(3, 1, 2)
        fac = msh.value(4) or msh.value(4, 1, 2)
        return Header(
            field_separator=fs,
            encoding_characters=enc,
            sending_application=msh.raw(3),
            sending_facility=msh.raw(4),
            receiving_application=msh.raw(5),
            receiving_facility=msh.raw(6),
            timestamp=msh.raw(7),
            message_code=components[0],
            trigger_event=components[1] if len(components) > 1 else "",
            structure=components[2] if len(components) > 2 else "",
            control_id=msh.raw(10),
            processing_id=msh.raw(11),
            version=msh.raw(12),
            accept_ack_type=msh.raw(15),
            application_ack_type=msh.raw(16),
            charset=msh.raw(18).split(enc[1:2] or "~")[0].strip(),
            codec=codec,
            sending_system=f"{app}^{fac}" if fac else app,
        )

    @property
    def message_type(self) -> str:
        """``ADT^A01``: MSH-9.1 and 9.2 joined the way routes and validators write them."""
        return f"{self.message_code}^{self.trigger_event}" if self.trigger_event else self.message_code

    @property
    def trigger(self) -> str:
        """MSH-9.2 as profiles compare it (trimmed, upper case)."""
        return self.trigger_event.strip().upper()

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

    def wire(self, text: str) -> str:
        """A field of this header (as written) in the standard delimiters, for replies written with those."""
        if self.field_separator == "|" and self.encoding_characters[:4] == DEFAULT_ENCODING_CHARACTERS:
            return text
        fs, enc = self.field_separator, self.encoding_characters
        rep, comp, sub = enc[1:2] or "~", enc[:1] or "^", enc[3:4] or "&"
        return render_field(
            [[[unescape(s, fs, enc) for s in c.split(sub)] for c in r.split(comp)] for r in text.split(rep)]
        )

    def expect(self, message_code: str, triggers: Sequence[str]) -> None:
        """Refuse a message of another type (AR 200) or trigger event (AR 201) than this face handles."""
        code = self.message_code.strip().upper()
        if code != message_code:
            raise Hl7Error(
                f"MSH-9 message type must be {message_code} (got {code or 'nothing'})",
                error_code="200",
                location="MSH^1^9^1^1",
                ack_code="AR",
            )
        if self.trigger not in triggers:
            raise Hl7Error(
                f"MSH-9 trigger event must be one of {'|'.join(triggers)} (got {self.trigger or 'nothing'})",
                error_code="201",
                location="MSH^1^9^1^2",
                ack_code="AR",
            )
        if not self.control_id:
            raise Hl7Error("MSH-10 message control ID is required", error_code="101", location="MSH^1^10")


def reply_msh(request: Header, message_type: str, *, application: str = "", facility: str = "") -> str:
    """The MSH of an answer to ``request``: sender and receiver swapped, version and charset echoed."""
    return msh(
        sending_application=application or request.wire(request.receiving_application),
        sending_facility=facility or request.wire(request.receiving_facility),
        receiving_application=request.wire(request.sending_application),
        receiving_facility=request.wire(request.sending_facility),
        message_type=message_type,
        version=request.wire(request.version) or "2.5",
        processing_id=request.wire(request.processing_id) or "P",
        charset=request.wire(request.charset) or "UNICODE UTF-8",
    )


def reply_msa(request: Header, code: str) -> str:
    """MSA of an answer to ``request``: the acknowledgement code and the request's control ID echoed."""
    return render("MSA", [code, Raw(request.wire(request.control_id))])


def query_error_response(
    request: str | bytes | V2Message,
    error: Hl7Error,
    expected: tuple[str, str],
    message_type: str,
    *,
    application: str = "",
) -> str | None:
    """The query response (MSA AE/AR, ERR, QAK, QPD echo) to a query that failed to parse.

    A query is answered with its response message, not a bare ACK; None when
    the request is not readable as the ``expected`` (message code, trigger), so
    the caller falls back to an ACK.
    """
    try:
        msg = request if isinstance(request, V2Message) else V2Message(request)
    except Hl7Error:
        return None
    if (msg.header.message_code.strip().upper(), msg.header.trigger) != expected:
        return None
    qpd = msg.first("QPD")
    ack = "AR" if error.ack_code == "AR" else "AE"
    segments = [
        reply_msh(msg.header, message_type, application=application),
        reply_msa(msg.header, ack),
        err_segment(error),
        render("QAK", [qpd.value(2) if qpd else "", ack]),
    ]
    if qpd is not None:
        segments.append(qpd.render())
    return join(segments)
