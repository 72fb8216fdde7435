"""HL7 v2 segments out: values escaped, the standard delimiters ``|^~\\&``, trailing empties dropped.

Hand-written rather than with ``hl7.util.escape``, which turns every non-ASCII
character into ``\\Xhh\\`` and so mangles UTF-8 and GB18030 names; values may
carry CR or LF (an address line), which are escaped too since receivers read
either as a segment end.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeAlias

from esb.errors import Hl7Error
from transforms.hl7v2.ack import ERROR_CODES, new_control_id

#: what the writer takes for a component: a string or its subcomponents
Comp: TypeAlias = str | Sequence[str]
#: what the writer takes for a field: a string, or repetitions of components
FieldValue: TypeAlias = str | Sequence[Sequence[Comp]]

_ESCAPE_OUT = str.maketrans(
    {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\", "\r": "\\X0D\\", "\n": "\\X0A\\"}
)


def escape(text: str) -> str:
    """Escape delimiters for the standard encoding characters (HL7 v2.5 section 2.7)."""
    return text.translate(_ESCAPE_OUT)


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


def now_ts() -> str:
    """The current time as an HL7 TS with the UTC offset."""
    return datetime.now().astimezone().strftime("%Y%m%d%H%M%S%z")


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
) -> str:
    """An MSH segment; application/facility and message type are wire text (``RSP^K23^RSP_K23``)."""
    fields: list[FieldValue] = [
        Raw(sending_application),
        Raw(sending_facility),
        Raw(receiving_application),
        Raw(receiving_facility),
        Raw(now_ts()),
        "",
        Raw(message_type),
        control_id or new_control_id(),
        processing_id,
        version,
        "", "", "", "", "",
        charset,
    ]  # fmt: skip
    return "MSH|^~\\&|" + render("MSH", fields)[4:]


def err_segment(error: Hl7Error) -> str:
    """ERR for HL7 v2.5: ERR-2 location, ERR-3 code from table 0357, ERR-4 severity, ERR-8 user message."""
    code_text = ERROR_CODES.get(error.error_code, "")
    return render(
        "ERR",
        [
            "",
            Raw(error.location),
            [[error.error_code, code_text, "HL70357"]],
            error.severity,
            "", "", "",
            error.text,
        ],
    )  # fmt: skip


def join(segments: Sequence[str]) -> str:
    """Segments into a message: each ends with a carriage return."""
    return "".join(s + "\r" for s in segments)
