"""DICOM JSON (PS3.18 F.2) straight from an instance file's bytes, in one pass, for WADO-RS metadata.

pydicom builds a Dataset and converts every element through its value
machinery: about 20 ms for a 260-element CT header, six seconds for the
300-instance series a viewer opens first. This walk reads the element headers
and turns each value into its JSON form directly (a few microseconds each),
skips bulk values by seeking, and stops at the pixel data, whose place it
notes. What it does not know how to convert itself (a value pydicom must
interpret: a charset with code extensions handled by ``pydicom.charset``, an
odd number) goes through pydicom for that one element; a file it cannot walk
(deflated) is read by pydicom whole. The result is the same JSON as
:func:`adapters.dicomweb.dicomjson.to_json` (a test compares them file by file).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR, private_dictionary_VR
from pydicom.dataelem import DataElement_from_raw, RawDataElement
from pydicom.tag import Tag

from adapters.dicomweb.dicomjson import (
    BINARY_VRS,
    LONG_VRS,
    PIXEL_TAGS,
    UNDEFINED_LENGTH,
    BulkUri,
    Header,
    PixelElement,
    TagPath,
    read_header,
    to_json,
)

ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_READ = 64 * 1024
#: VR -> (struct code, size in bytes)
_NUMBERS = {"US": ("H", 2), "SS": ("h", 2), "UL": ("L", 4), "SL": ("l", 4), "UV": ("Q", 8), "SV": ("q", 8),
            "FL": ("f", 4), "FD": ("d", 8)}  # fmt: skip
_PLAIN_STRINGS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})
_TEXTS = frozenset({"LO", "SH", "UC"})
_SINGLE_TEXTS = frozenset({"LT", "ST", "UT", "UR"})
_TEXT_DELIMITERS = {0x09, 0x0A, 0x0C, 0x0D, 0x5C}
_PN_DELIMITERS = {0x5E}
_EXPLICIT_VRS = frozenset(
    {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW", "PN",
     "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"}
)  # fmt: skip


class WalkError(ValueError):
    """The bytes do not walk as a data set (the caller falls back to pydicom)."""


@dataclass
class _Context:
    little: bool
    implicit: bool
    codec: str | None = "latin_1"
    encodings: list[str] = field(default_factory=lambda: ["iso8859"])
    pixel_representation: int = 0


class _Reader:
    """A forward reader over a file that keeps only what it has not consumed, and seeks over what it skips."""

    def __init__(self, fp: BinaryIO, start: int) -> None:
        self.fp = fp
        fp.seek(start)
        self.buf = b""
        self.pos = 0
        self.base = start  # file offset of buf[0]

    def tell(self) -> int:
        return self.base + self.pos

    def need(self, count: int) -> bool:
        missing = count - (len(self.buf) - self.pos)
        if missing <= 0:
            return True
        more = self.fp.read(max(missing, _READ))
        self.base += self.pos
        self.buf = self.buf[self.pos :] + more
        self.pos = 0
        return len(self.buf) >= count

    def take(self, count: int) -> bytes:
        if not self.need(count):
            raise WalkError("the data set ends inside a value")
        data = self.buf[self.pos : self.pos + count]
        self.pos += count
        return data

    def skip(self, count: int) -> None:
        if self.pos + count <= len(self.buf):
            self.pos += count
            return
        target = self.tell() + count
        self.fp.seek(target)
        self.buf, self.pos, self.base = b"", 0, target


def _dictionary_vr(tag: int, ctx: _Context, creators: dict[int, str]) -> str:
    if tag >> 16 & 1:
        if 0x0010 <= tag & 0xFFFF <= 0x00FF:
            return "LO"  # a private creator
        creator = creators.get((tag & 0xFFFF0000) | (tag >> 8 & 0xFF))
        try:
            return private_dictionary_VR(tag, creator).split(" or ")[0] if creator else "UN"
        except KeyError:
            return "UN"
    try:
        known = dictionary_VR(tag)
    except KeyError:
        return "UN"
    if "OW" in known and "US" not in known:
        return "OW"
    if " or " in known:
        return "SS" if ctx.pixel_representation == 1 and "SS" in known else "US"
    return known


def _strings(text: str) -> list[str | None]:
    return [v if v else None for v in text.rstrip("\x00 ").split("\\")]


def _decode(raw: bytes, ctx: _Context, delimiters: set[int]) -> str:
    if ctx.codec is not None:
        return raw.decode(ctx.codec, errors="replace")
    return decode_bytes(raw, ctx.encodings, delimiters)


def _convert(tag: int, vr: str, raw: bytes, ctx: _Context) -> dict[str, Any]:
    """The JSON of one value; raises for anything left to pydicom."""
    if not raw:
        return {"vr": vr}
    if vr in _PLAIN_STRINGS:
        values: list[Any] = _strings(raw.decode("latin_1"))
    elif vr in ("DS", "IS"):
        kind = float if vr == "DS" else int
        text = raw.decode("latin_1").rstrip("\x00 ")
        values = [kind(v.strip()) if v.strip() else None for v in text.split("\\")]
    elif vr in _TEXTS:
        text = _decode(raw, ctx, _TEXT_DELIMITERS).rstrip("\x00 ")
        values = [v.rstrip("\x00 ") or None for v in text.split("\\")]
    elif vr in _SINGLE_TEXTS:
        values = [_decode(raw, ctx, _TEXT_DELIMITERS).rstrip("\x00 ")]
    elif vr == "PN":
        values = [_person(part, ctx) for part in raw.rstrip(b"\x00 ").split(b"\\")]
    elif vr in _NUMBERS:
        code, size = _NUMBERS[vr]
        count = len(raw) // size
        values = list(struct.unpack(f"{'<' if ctx.little else '>'}{count}{code}", raw[: count * size]))
        if vr in ("FL", "FD") and any(v != v or v in (float("inf"), float("-inf")) for v in values):
            raise WalkError("not a JSON number")
    elif vr == "AT":
        count = len(raw) // 4
        pairs = struct.unpack(f"{'<' if ctx.little else '>'}{count * 2}H", raw[: count * 4])
        values = [f"{pairs[i]:04X}{pairs[i + 1]:04X}" for i in range(0, len(pairs), 2)]
    elif vr in BINARY_VRS:
        return {"vr": vr, "InlineBinary": base64.b64encode(raw).decode("ascii")}
    else:
        raise WalkError(f"VR {vr}")
    if all(v is None for v in values):
        return {"vr": vr}
    return {"vr": vr, "Value": values}


def _person(raw: bytes, ctx: _Context) -> dict[str, str] | None:
    components = [_decode(c, ctx, _PN_DELIMITERS) for c in raw.split(b"=")]
    while components and not components[-1]:
        components.pop()
    if not components:
        return None
    return dict(zip(("Alphabetic", "Ideographic", "Phonetic"), components, strict=False))


def _by_pydicom(tag: int, vr: str, raw: bytes, ctx: _Context) -> dict[str, Any] | None:
    try:
        element = DataElement_from_raw(
            RawDataElement(Tag(tag), vr, len(raw), raw, 0, ctx.implicit, ctx.little), encoding=ctx.encodings
        )
        found: dict[str, Any] = element.to_json_dict(None, len(raw) + 1)
    except Exception:  # the value cannot be read at all: left out, as to_json leaves it out
        return None
    return found


def _charset(raw: bytes, ctx: _Context) -> None:
    terms = [t.strip() for t in raw.decode("latin_1").rstrip("\x00 ").split("\\")]
    ctx.encodings = convert_encodings(terms if any(terms) else None)
    single = len(ctx.encodings) == 1 and not ctx.encodings[0].startswith("iso2022")
    ctx.codec = ctx.encodings[0] if single else None


class _Walker:
    def __init__(self, reader: _Reader, ctx: _Context, bulk: BulkUri, threshold: int) -> None:
        self.r, self.ctx, self.bulk, self.threshold = reader, ctx, bulk, threshold
        self.pixels: PixelElement | None = None

    def head(self, implicit: bool) -> tuple[int, str | None, int]:
        order = "<" if self.ctx.little else ">"
        if not self.r.need(8):
            raise EOFError
        group, element = struct.unpack_from(f"{order}HH", self.r.buf, self.r.pos)
        tag = group << 16 | element
        if implicit or group == 0xFFFE:
            (length,) = struct.unpack_from(f"{order}L", self.r.buf, self.r.pos + 4)
            self.r.skip(8)
            return tag, None, length
        vr = self.r.buf[self.r.pos + 4 : self.r.pos + 6].decode("latin_1")
        if vr in LONG_VRS or vr not in _EXPLICIT_VRS:
            self.r.skip(8)
            (length,) = struct.unpack(f"{order}L", self.r.take(4))
            return tag, vr if vr in _EXPLICIT_VRS else "UN", length
        (length,) = struct.unpack_from(f"{order}H", self.r.buf, self.r.pos + 6)
        self.r.skip(8)
        return tag, vr, length

    def dataset(self, path: TagPath, end: int | None, implicit: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        creators: dict[int, str] = {}  # (group << 16 | block) -> private creator, for implicit VR private tags
        while end is None or self.r.tell() < end:
            try:
                start = self.r.tell()
                tag, vr, length = self.head(implicit)
            except EOFError:
                break
            if tag == ITEM_END:
                break
            if tag in PIXEL_TAGS and not path:
                vr = vr or "OW"
                self.pixels = PixelElement(tag, vr, self.r.tell(), length)
                self.r.fp.seek(start)  # nothing after the pixel data is metadata worth a read
                break
            self.element(out, path, (tag, vr, length), implicit, creators)
        return out

    def element(
        self,
        out: dict[str, Any],
        path: TagPath,
        head: tuple[int, str | None, int],
        implicit: bool,
        creators: dict[int, str],
    ) -> None:
        tag, vr, length = head
        key = f"{tag:08X}"
        undefined = length == UNDEFINED_LENGTH
        if (tag & 0xFFFF == 0 or tag >> 16 == 2) and not undefined:
            self.r.skip(length)  # group lengths are left out, as to_json leaves them out
            return
        # UN of a known attribute is read as its dictionary VR (pydicom's replace_un_with_known_vr), in implicit VR
        as_un = vr == "UN"
        if vr is None or as_un:
            known = _dictionary_vr(tag, self.ctx, creators)
            vr = known if known != "UN" or vr is None else vr
        if undefined and (vr in ("OB", "OW") or tag in PIXEL_TAGS):  # encapsulated pixel data in an item
            self.fragments()
            out[key] = {"vr": vr, "BulkDataURI": self.bulk((*path, tag))}
            return
        if undefined or vr == "SQ":
            inner = implicit or as_un or vr == "UN"
            items = self.items((*path, tag), None if undefined else self.r.tell() + length, inner)
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            return
        if tag in PIXEL_TAGS or (vr in BINARY_VRS and length > self.threshold):
            self.r.skip(length)
            out[key] = {"vr": vr, "BulkDataURI": self.bulk((*path, tag))}
            return
        raw = self.r.take(length)
        if tag == 0x00080005:
            _charset(raw, self.ctx)
        elif tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF:
            creators[(tag & 0xFFFF0000) | (tag & 0xFF)] = raw.decode("latin_1").strip("\x00 ")
        elif tag == 0x00280103 and length >= 2:
            self.ctx.pixel_representation = struct.unpack(f"{'<' if self.ctx.little else '>'}H", raw[:2])[0]
        try:
            out[key] = _convert(tag, vr, raw, self.ctx)
        except (WalkError, ValueError, UnicodeDecodeError, LookupError):
            found = _by_pydicom(tag, vr, raw, self.ctx)
            if found is not None:
                out[key] = found

    def items(self, path: TagPath, end: int | None, implicit: bool) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while end is None or self.r.tell() < end:
            tag, _, length = self.head(True)
            if tag == SEQUENCE_END:
                break
            if tag != ITEM:
                raise WalkError(f"expected an item, got ({tag >> 16:04X},{tag & 0xFFFF:04X})")
            item_end = None if length == UNDEFINED_LENGTH else self.r.tell() + length
            items.append(self.dataset((*path, len(items)), item_end, implicit))
        return items

    def fragments(self) -> None:
        while True:
            tag, _, length = self.head(True)
            if tag == SEQUENCE_END:
                return
            if tag != ITEM or length == UNDEFINED_LENGTH:
                raise WalkError("broken pixel data fragments")
            self.r.skip(length)


def _dataset_start(fp: BinaryIO) -> tuple[int, str]:
    """Where the data set begins, and its transfer syntax, from the file meta (PS3.10 7.1)."""
    fp.seek(0)
    head = fp.read(144)
    if len(head) < 144 or head[128:132] != b"DICM" or head[132:134] != b"\x02\x00":
        raise WalkError("no DICOM file meta information")
    position, syntax = 132, ""
    while True:
        fp.seek(position)
        element = fp.read(12)
        if len(element) < 8 or struct.unpack("<H", element[:2])[0] != 0x0002:
            return position, syntax
        tag = struct.unpack("<HH", element[:4])
        if element[4:6] in (b"OB", b"OW", b"UN", b"UT", b"SQ", b"UC", b"UR"):
            length, value_at = struct.unpack("<L", element[8:12])[0], position + 12
        else:
            length, value_at = struct.unpack("<H", element[6:8])[0], position + 8
        if tag == (0x0002, 0x0010):
            fp.seek(value_at)
            syntax = fp.read(length).decode("latin_1").rstrip("\x00 ")
        position = value_at + length


def instance_json(fp: BinaryIO, bulk: BulkUri, threshold: int) -> tuple[dict[str, Any], str, PixelElement | None]:
    """The instance's DICOM JSON (bulk values as ``bulk(path)``), its transfer syntax and its pixel data element."""
    try:
        start, syntax = _dataset_start(fp)
        if syntax in ("1.2.840.10008.1.2.1.99", ""):
            raise WalkError("deflated")
        ctx = _Context(little=syntax != "1.2.840.10008.1.2.2", implicit=syntax == "1.2.840.10008.1.2")
        walker = _Walker(_Reader(fp, start), ctx, bulk, threshold)
        found = walker.dataset((), None, ctx.implicit)
        return found, syntax, walker.pixels
    except (WalkError, struct.error):
        header: Header = read_header(fp)
        return to_json(header.dataset, bulk=bulk, threshold=threshold), header.transfer_syntax, header.pixels
