"""A faster encoder for the small data sets DIMSE sends: command sets and C-FIND responses.

pynetdicom encodes every command set twice (once for its group length) and
every C-FIND response identifier with pydicom's writer, which costs 20-60 µs
per element (a buffer object per element, character set lookups): about a
millisecond per C-FIND response and half of one per C-STORE response. These
data sets hold short text, UIDs and binary integers only, so :func:`encode`
writes those itself, byte for byte as pydicom does (PS3.5 7.1: tag, VR and
length, values padded to even length, ``\\`` between values), and hands
anything else to pynetdicom's own encoder: a sequence, binary data, big
endian or deflate, a value that is not plain text, or a character set other
than the default and ISO_IR 192 (UTF-8). :func:`install` makes pynetdicom use
it; ``tests/adapters/dicom/test_encoding.py`` holds it to pydicom's output.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

Encoder = Callable[..., bytes | None]

#: VRs whose value is text, and the byte that pads an odd-length value
TEXT_PADDING = {
    "AE": b" ", "AS": b" ", "CS": b" ", "DA": b" ", "DT": b" ", "LO": b" ", "LT": b" ", "PN": b" ", "SH": b" ",
    "ST": b" ", "TM": b" ", "UC": b" ", "UI": b"\x00", "UR": b" ", "UT": b" ",
}  # fmt: skip
#: text VRs a character set applies to (PS3.5 6.1.2.3); the others are plain ASCII
CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
NUMBER_STRINGS = frozenset({"IS", "DS"})
BINARY_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}
#: explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
UTF8 = "ISO_IR 192"
CHARSET = 0x00080005


class _Unsupported(Exception):
    """Something only pydicom's writer encodes correctly."""


def _values(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _text(vr: str, value: Any, utf8: bool) -> bytes:
    parts = []
    for item in _values(value):
        if isinstance(item, PersonName):
            item = str(item)
        if not isinstance(item, str):
            raise _Unsupported()
        parts.append(item)
    text = "\\".join(parts)
    if text.isascii():
        data = text.encode("ascii")
    elif utf8 and vr in CHARSET_VRS:
        data = text.encode("utf-8")
    else:
        raise _Unsupported()
    return data + TEXT_PADDING[vr] if len(data) % 2 else data


def _number_string(value: Any) -> bytes:
    """As pydicom's ``write_number_string``: the value as it was given, when it was given as text."""
    parts = []
    for item in _values(value):
        if isinstance(item, bool) or not isinstance(item, int | float | str):
            raise _Unsupported()
        parts.append(str(getattr(item, "original_string", item)))
    text = "\\".join(parts)
    if not text.isascii():
        raise _Unsupported()
    data = text.encode("ascii")
    return data + b" " if len(data) % 2 else data


def _binary(vr: str, value: Any) -> bytes:
    items = _values(value)
    if not all(isinstance(item, int | float) and not isinstance(item, bool) for item in items):
        raise _Unsupported()
    try:
        return struct.pack(f"<{len(items)}{BINARY_NUMBERS[vr]}", *items)
    except struct.error:  # out of range: pydicom raises too, let it say so
        raise _Unsupported() from None


def _value(vr: str, value: Any, utf8: bool) -> bytes:
    if vr in TEXT_PADDING:
        return _text(vr, value, utf8)
    if vr in NUMBER_STRINGS:
        return _number_string(value)
    if vr in BINARY_NUMBERS:
        return _binary(vr, value)
    raise _Unsupported()


def _charset_is_utf8(ds: Dataset) -> bool:
    """False for the default repertoire; True for ISO_IR 192; anything else is left to pydicom."""
    element = ds.get_item(CHARSET)
    if element is None:
        return False
    values = [str(v).strip() for v in _values(ds[CHARSET].value)]
    if not values or values == ["ISO_IR 6"]:
        return False
    if values == [UTF8]:
        return True
    raise _Unsupported()


def encode_fast(ds: Dataset, implicit: bool) -> bytes:
    """``ds`` as little endian bytes; :class:`_Unsupported` when it holds what only pydicom writes."""
    utf8 = _charset_is_utf8(ds)
    out = []
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths: pydicom leaves them out (PS3.5 7.2)
        element = ds.get_item(tag)
        if not isinstance(element, DataElement):
            raise _Unsupported()  # still as read: pydicom copies its bytes as they came
        vr = str(element.VR)
        data = _value(vr, element.value, utf8)
        group, number = int(tag) >> 16, int(tag) & 0xFFFF
        if implicit:
            out.append(struct.pack("<HHL", group, number, len(data)))
        elif vr in LONG_VRS:
            out.append(struct.pack("<HH2sHL", group, number, vr.encode("ascii"), 0, len(data)))
        elif len(data) > 0xFFFF:
            raise _Unsupported()
        else:
            out.append(struct.pack("<HH2sH", group, number, vr.encode("ascii"), len(data)))
        out.append(data)
    return b"".join(out)


def make_encoder(original: Encoder) -> Encoder:
    """pynetdicom's ``encode(ds, is_implicit_vr, is_little_endian, deflated=False)``, faster where it can be."""

    def encode(ds: Dataset, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False) -> bytes | None:
        if is_little_endian and not deflated:
            try:
                return encode_fast(ds, is_implicit_vr)
            except _Unsupported:
                pass
            except Exception:  # a value pydicom would refuse: its encoder reports it
                pass
        return original(ds, is_implicit_vr, is_little_endian, deflated)

    encode.original = original  # type: ignore[attr-defined]
    return encode


def install() -> None:
    """Make pynetdicom's DIMSE messages, service classes and SCU calls use :func:`make_encoder`'s encoder."""
    from pynetdicom import association, dimse_messages, dsutils, service_class

    for module in (association, dimse_messages, service_class):
        if not hasattr(getattr(module, "encode"), "original"):  # noqa: B009 - not every stub names it
            setattr(module, "encode", make_encoder(dsutils.encode))  # noqa: B010
