"""Accept headers (RFC 9110 12.5.1) as DICOMweb uses them, and what each resource can answer.

DICOMweb puts the real choice in media type parameters: ``multipart/related;
type="application/dicom"; transfer-syntax=*``. Ranges are taken in q order;
the first one a resource can satisfy wins, and none gives 406 (PS3.18 8.7.5).
A missing Accept is ``*/*``: the resource answers in its own form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.uid import ExplicitVRLittleEndian

#: the default transfer syntax of application/dicom and application/octet-stream (PS3.18 Table 8.7.3-2)
DEFAULT_SYNTAX = ExplicitVRLittleEndian
#: "as stored" (PS3.18 8.7.3.5.2: transfer-syntax=*)
ANY_SYNTAX = "*"


@dataclass(frozen=True)
class MediaRange:
    type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def wildcard(self) -> bool:
        return self.type in ("*/*", "multipart/*")

    def matches(self, media_type: str) -> bool:
        kind = media_type.split("/", 1)[0]
        return self.type in (media_type, f"{kind}/*", "*/*")


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_accept(header: str | None) -> list[MediaRange]:
    """The ranges of an Accept header by preference (q, then order); ``*/*`` when there is none."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges: list[MediaRange] = []
    for item in _split(header, ","):
        pieces = _split(item, ";")
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            else:
                params[name] = value
        if q > 0:
            ranges.append(MediaRange(pieces[0].lower(), params, q))
    return sorted(ranges, key=lambda r: -r.q)


def accepts(ranges: list[MediaRange], *media_types: str) -> bool:
    """True when a range takes one of ``media_types`` (single-part answers: JSON, images)."""
    return any(r.matches(m) for r in ranges for m in media_types)


def first_accepted(ranges: list[MediaRange], media_types: tuple[str, ...]) -> str | None:
    """The first of ``media_types`` (the resource's preference) taken by the client's best range."""
    for media_range in ranges:
        for media_type in media_types:
            if media_range.matches(media_type):
                return media_type
    return None


@dataclass(frozen=True)
class PartChoice:
    """What the client takes in the parts of a multipart/related answer."""

    #: media type of the parts the range names ("" for a wildcard range)
    part_type: str
    #: a transfer syntax UID, ANY_SYNTAX, or "" for the default of part_type
    syntax: str


def part_choices(ranges: list[MediaRange], part_types: tuple[str, ...]) -> list[PartChoice]:
    """The multipart ranges whose parts are one of ``part_types`` (wildcards: any), in preference order."""
    choices: list[PartChoice] = []
    for media_range in ranges:
        if media_range.wildcard or media_range.type == "multipart/related" and not media_range.params.get("type"):
            choices.append(PartChoice("", media_range.params.get("transfer-syntax", ANY_SYNTAX)))
        elif media_range.type == "multipart/related":
            part_type = media_range.params["type"].lower()
            if part_type in part_types:
                choices.append(PartChoice(part_type, media_range.params.get("transfer-syntax", "")))
    return choices
