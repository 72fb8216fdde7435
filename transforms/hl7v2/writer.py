"""HL7 v2 segments out: values escaped, the standard delimiters ``|^~\\&``, trailing empties dropped.

The MSH and ERR segments of every reply (ACKs from :mod:`transforms.hl7v2.ack`,
query responses from the PIX/PDQ faces) are written here; those two take the
delimiters of the message they answer, since an ACK echoes its sender's fields
as they were written. Escaping is :func:`transforms.hl7v2.encoding.escape`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TypeAlias

from esb.errors import Hl7Error
from transforms.hl7v2.encoding import DEFAULT_ENCODING_CHARACTERS, escape

#: HL7 table 0357, message error condition codes
ERROR_CODES: dict[str, str] = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

#: what the writer takes for a component: a string or its subcomponents
Comp: TypeAlias = str | Sequence[str]
#: what the writer takes for a field: a string, or repetitions of components
FieldValue: TypeAlias = str | Sequence[Sequence[Comp]]


def render_field(value: FieldValue) -> str:
    """Escape the leaves and join with ``~ ^ &``, dropping trailing empties at every level."""
    if isinstance(value, str):
        return escape(value)
    reps: list[str] = []
    for rep in value:
        comps: list[str] = []
        for comp in rep:
            if isinstance(comp, str):
                comps.append(escape(comp))
            else:
                comps.append("&".join(escape(s) for s in comp).rstrip("&"))
        reps.append("^".join(comps).rstrip("^"))
    while reps and not reps[-1]:
        reps.pop()
    return "~".join(reps)


def render(name: str, fields: Sequence[FieldValue]) -> str:
    """A segment from field 1 on; fields given as wire text must be wrapped with :class:`Raw`."""
    texts = [f.text if isinstance(f, Raw) else render_field(f) for f in fields]
    while texts and not texts[-1]:
        texts.pop()
    return "|".join([name, *texts])


class Raw(str):
    """A field value that is already wire text (escaped): written as it is."""

    @property
    def text(self) -> str:
        return str(self)


def new_control_id() -> str:
    """A fresh MSH-10: unique without coordination between nodes (20 hex digits fit ST)."""
    return uuid.uuid4().hex[:20]


def version_tuple(text: str) -> tuple[int, ...]:
    """MSH-12 as numbers (``2.5.1`` -> (2, 5, 1)); (2, 5) when it holds none."""
    numbers = re.findall(r"\d+", text)
    return tuple(int(n) for n in numbers[:3]) if numbers else (2, 5)


def now_ts(now: datetime | None = None) -> str:
    """``now`` (default: the current time) as an HL7 TS with the UTC offset; naive times are local."""
    moment = now if now is not None and now.tzinfo is not None else (now or datetime.now()).astimezone()
    return moment.strftime("%Y%m%d%H%M%S%z")


def msh(
    *,
    sending_application: str,
    sending_facility: str,
    receiving_application: str,
    receiving_facility: str,
    message_type: str,
    version: str = "2.5",
    processing_id: str = "P",
    charset: str = "UNICODE UTF-8",
    control_id: str | None = None,
    now: datetime | None = None,
    field_separator: str = "|",
    encoding_characters: str = DEFAULT_ENCODING_CHARACTERS,
) -> str:
    """An MSH segment; every value is wire text in the given delimiters (``RSP^K23^RSP_K23``)."""
    fields = [
        encoding_characters,
        sending_application,
        sending_facility,
        receiving_application,
        receiving_facility,
        now_ts(now),
        "",
        message_type,
        control_id or new_control_id(),
        processing_id,
        version,
        "", "", "", "", "",
        charset,
    ]  # fmt: skip
    return "MSH" + field_separator + field_separator.join(fields).rstrip(field_separator)


def err(
    code: str,
    text: str,
    severity: str = "E",
    location: str = "",
    *,
    version: str = "2.5",
    field_separator: str = "|",
    encoding_characters: str = DEFAULT_ENCODING_CHARACTERS,
) -> str:
    """ERR for the message's version, ``location`` an ERL written with ``^``.

    v2.5 and later put the location in ERR-2, the table 0357 code in ERR-3 and
    the severity in ERR-4, with the text for people in ERR-8; older versions get
    the same in ERR-1 (segment^sequence^field^code&text&HL70357).
    """
    fs, enc = field_separator, encoding_characters
    comp, sub = enc[0], enc[3]
    meaning = ERROR_CODES.get(code, "")
    where = [escape(part, fs, enc) for part in location.split("^")] if location else []
    if version_tuple(version) >= (2, 5):
        coded = comp.join([code, meaning, "HL70357"])
        fields = ["", comp.join(where), coded, escape(severity, fs, enc), "", "", "", escape(text, fs, enc)]
    else:
        coded = sub.join([code, escape(meaning, fs, enc), "HL70357"])
        fields = [comp.join((where + ["", "", ""])[:3] + [coded])]
    return "ERR" + fs + fs.join(fields).rstrip(fs)


def err_segment(error: Hl7Error) -> str:
    """ERR (HL7 v2.5, standard delimiters) for an :class:`Hl7Error`."""
    return err(error.error_code, error.text, error.severity, error.location)


def join(segments: Sequence[str]) -> str:
    """Segments into a message: each ends with a carriage return."""
    return "".join(s + "\r" for s in segments)
