"""HL7 v2 text below the segment level: character sets, segment ends, escaping.

The one place escaping lives (every reader and writer in this package uses it).
Hand-written rather than python-hl7's ``hl7.util.escape``/``unescape``:

- ``escape`` turns every non-ASCII character into ``\\Xhh\\``, which mangles
  names in UTF-8 and GB18030 messages where they may be written as they are;
- ``unescape`` logs the field value (patient data) at WARNING/ERROR on any
  sequence it does not know, and decodes ``\\Xhh\\`` byte by byte as Latin-1,
  so a UTF-8 name sent hex-escaped comes out garbled;
- both build a ``Message`` container per call; the table-driven versions here
  are 2-4 times faster, and unescaping runs once per field a mapping reads.

CR and LF in a value are written as ``\\X0D\\``/``\\X0A\\`` (receivers read
either as a segment end, and ``\\.br\\`` is allowed only in FT/TX/CF fields), so
every value round-trips through :func:`unescape`.

python-hl7 parses text, so bytes must be decoded first, yet the character set
is named inside those bytes (MSH-18): :func:`declared_charset` reads it from the
raw MSH bytes (the delimiters and the table 0211 names are ASCII, and every
character set accepted here is ASCII-compatible). UTF-16 and UTF-32 are
refused: in those the bytes of "MSH" are not ASCII, so no receiver could find
the header.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

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
#: MSH-2 as the standard writes it: component, repetition, escape, subcomponent
DEFAULT_ENCODING_CHARACTERS = "^~\\&"
_PROBE = "MSH|^~\\&"
_HEX = re.compile(r"X(?:[0-9A-Fa-f]{2})+")


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

    HL7 allows only CR; a parser would read ``\\nPID`` as a segment named
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


def _delimiters(encoding_characters: str) -> str:
    """MSH-2 completed to four characters (senders may send fewer)."""
    return (encoding_characters + DEFAULT_ENCODING_CHARACTERS[len(encoding_characters) :])[:4]


@lru_cache(maxsize=32)
def _escape_table(field_separator: str, encoding_characters: str) -> dict[int, str]:
    chars = _delimiters(encoding_characters)
    component, repetition, esc, subcomponent = chars[0], chars[1], chars[2], chars[3]
    codes = {esc: "E", field_separator: "F", component: "S", repetition: "R", subcomponent: "T"}
    table = {ord(c): f"{esc}{code}{esc}" for c, code in codes.items()}
    table.update({ord("\r"): f"{esc}X0D{esc}", ord("\n"): f"{esc}X0A{esc}"})
    return table


def escape(text: str, field_separator: str = "|", encoding_characters: str = DEFAULT_ENCODING_CHARACTERS) -> str:
    """Escape the delimiters (``\\F\\ \\S\\ \\R\\ \\E\\ \\T\\``) and CR/LF (``\\X0D\\ \\X0A\\``) in a value.

    Non-ASCII characters are left as they are: ``hl7.util.escape`` would
    hex-escape every one of them (``\\Xe5bca0\\`` for 张), which is why it is
    not used.
    """
    return text.translate(_escape_table(field_separator, encoding_characters))


@lru_cache(maxsize=32)
def _unescape_table(field_separator: str, encoding_characters: str) -> dict[str, str]:
    chars = _delimiters(encoding_characters)
    component, repetition, esc, subcomponent = chars[0], chars[1], chars[2], chars[3]
    return {"F": field_separator, "S": component, "T": subcomponent, "R": repetition, "E": esc, ".br": "\n"}


def unescape(text: str, field_separator: str = "|", encoding_characters: str = DEFAULT_ENCODING_CHARACTERS) -> str:
    """Decode escape sequences: delimiters, ``\\.br\\``, ``\\Xhh\\`` hex (UTF-8, else Latin-1).

    Formatting (``\\H\\ \\N\\``) and unknown sequences are dropped silently:
    python-hl7's ``unescape`` logs the field value (patient data) at WARNING
    or ERROR for those, and decodes hex byte by byte as Latin-1.
    """
    esc = _delimiters(encoding_characters)[2]
    if esc not in text:
        return text
    known = _unescape_table(field_separator, encoding_characters)
    out: list[str] = []
    parts = text.split(esc)
    # parts alternate literal, sequence, literal, ...; an unclosed escape stays literal
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part)
        elif i == len(parts) - 1:
            out.append(esc + part)
        elif part in known:
            out.append(known[part])
        elif part[:1] == "X" and _HEX.fullmatch(part):
            raw = bytes.fromhex(part[1:])
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(raw.decode("latin-1"))
    return "".join(out)
