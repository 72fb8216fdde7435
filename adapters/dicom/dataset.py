"""A received data set as bytes: check its structure, read its header, write it as a Part 10 file.

Pixel data is never decoded and never parsed: :func:`check_structure` walks the
element headers only (tags in order, every length inside its parent, sequences
and encapsulated fragments closed), so a truncated or garbled data set is
refused up front instead of being stored and failing a viewer later; pydicom
alone reads a truncated file without complaint. :func:`read_header` parses the
elements before the pixel data (the exchange's body is made of them by
:func:`profiles.dicom.header.header_json`, as for STOW-RS).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from profiles.dicom.header import header_json as archive_header_json

ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
#: explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
PREAMBLE = b"\x00" * 128 + b"DICM"


class CorruptDataSet(ValueError):
    """The bytes are not a well-formed data set; the text says where."""


class _Walker:
    """Element-header walk over an encoded data set (PS3.5 7.1-7.5, A.4)."""

    def __init__(self, data: bytes | memoryview, *, implicit: bool, little: bool) -> None:
        self.data = data
        self.implicit = implicit
        self.order = "<" if little else ">"

    def tag(self, pos: int, end: int) -> int:
        if pos + 4 > end:
            raise CorruptDataSet(f"data set cut short at byte {pos}")
        group, element = struct.unpack_from(self.order + "HH", self.data, pos)
        return int(group) << 16 | int(element)

    def u32(self, pos: int, end: int) -> int:
        if pos + 4 > end:
            raise CorruptDataSet(f"data set cut short at byte {pos}")
        return int(struct.unpack_from(self.order + "L", self.data, pos)[0])

    def dataset(self, pos: int, end: int, *, in_item: bool, implicit: bool) -> int:
        """Walk elements from ``pos``; returns where they end (after the item delimiter when ``in_item``)."""
        first = True
        while pos < end:
            tag = self.tag(pos, end)
            if tag == ITEM_END and in_item:
                return pos + 8
            # Out-of-order tags are tolerated (some writers produce them); command and
            # file meta groups never start a data set.
            if tag >> 16 == 0xFFFE or (first and tag >> 16 in (0x0000, 0x0002)):
                raise CorruptDataSet(f"unexpected tag ({tag >> 16:04X},{tag & 0xFFFF:04X}) at byte {pos}")
            first = False
            if implicit:
                vr, length, pos = None, self.u32(pos + 4, end), pos + 8
            else:
                if pos + 8 > end:
                    raise CorruptDataSet(f"data set cut short at byte {pos}")
                vr = bytes(self.data[pos + 4 : pos + 6])
                if not (vr.isalpha() and vr.isupper()):
                    raise CorruptDataSet(f"no VR for ({tag >> 16:04X},{tag & 0xFFFF:04X}) at byte {pos}")
                if vr in LONG_VRS:
                    length, pos = self.u32(pos + 8, end), pos + 12
                else:
                    length = int(struct.unpack_from(self.order + "H", self.data, pos + 6)[0])
                    pos += 8
            if length == UNDEFINED:
                if vr in (None, b"SQ"):
                    pos = self.items(pos, end, implicit=implicit)
                elif vr == b"UN":  # PS3.5 6.2.2: an undefined-length UN is an implicit VR LE sequence
                    pos = self.items(pos, end, implicit=True)
                elif vr in (b"OB", b"OW") and tag in PIXEL_TAGS:
                    pos = self.fragments(pos, end)
                else:
                    raise CorruptDataSet(f"undefined length on ({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr!r}")
                continue
            if pos + length > end:
                raise CorruptDataSet(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) runs past the end of its data set")
            if vr == b"SQ":
                self.items(pos, pos + length, implicit=implicit, defined=True)
            pos += length
        if in_item:
            raise CorruptDataSet("an item has no item delimiter")
        return pos

    def items(self, pos: int, end: int, *, implicit: bool, defined: bool = False) -> int:
        while True:
            if defined and pos >= end:
                return pos
            tag, length = self.tag(pos, end), self.u32(pos + 4, end)
            if tag == SEQUENCE_END and not defined:
                return pos + 8
            if tag != ITEM:
                raise CorruptDataSet(f"expected an item at byte {pos}")
            pos += 8
            if length == UNDEFINED:
                pos = self.dataset(pos, end, in_item=True, implicit=implicit)
            else:
                if pos + length > end:
                    raise CorruptDataSet(f"an item runs past its sequence at byte {pos}")
                self.dataset(pos, pos + length, in_item=False, implicit=implicit)
                pos += length

    def fragments(self, pos: int, end: int) -> int:
        while True:
            tag, length = self.tag(pos, end), self.u32(pos + 4, end)
            if tag == SEQUENCE_END:
                return pos + 8
            if tag != ITEM or length == UNDEFINED or pos + 8 + length > end:
                raise CorruptDataSet(f"broken pixel data fragment at byte {pos}")
            pos += 8 + length


def plain_bytes(data: bytes | memoryview, syntax: UID) -> bytes | memoryview:
    """The data set's bytes with deflate undone (PS3.5 A.5); others as they are."""
    if syntax != DeflatedExplicitVRLittleEndian:
        return data
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(data)
    except zlib.error as exc:
        raise CorruptDataSet(f"the deflated data set does not inflate: {exc}") from None
    if not inflater.eof:
        raise CorruptDataSet("the deflated data set is cut short")
    return plain


def check_structure(data: bytes | memoryview, syntax: UID) -> None:
    """Raise :class:`CorruptDataSet` unless the (inflated) data set is well formed to its last byte."""
    if not data:
        raise CorruptDataSet("the data set is empty")
    implicit = syntax.is_implicit_VR if syntax.is_transfer_syntax else False
    little = syntax.is_little_endian if syntax.is_transfer_syntax else True
    walker = _Walker(data, implicit=implicit, little=little)
    try:
        walker.dataset(0, len(data), in_item=False, implicit=implicit)
    except (struct.error, RecursionError) as exc:
        raise CorruptDataSet(f"the data set cannot be walked: {type(exc).__name__}") from None


def _before_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return int(tag) in PIXEL_TAGS


def read_header(data: bytes | memoryview, syntax: UID) -> Dataset:
    """The elements before the pixel data, parsed (values are converted lazily by pydicom)."""
    implicit = syntax.is_implicit_VR
    little = syntax.is_little_endian
    try:
        ds = read_dataset(io.BytesIO(data), implicit, little, stop_when=_before_pixels)
    except Exception as exc:
        raise CorruptDataSet(f"the header cannot be read: {type(exc).__name__}") from None
    return ds


def header_json(ds: Dataset) -> bytes:
    """The body of the exchange a received instance becomes (C-STORE here, STOW-RS in ``dicomweb:``).

    The archive's own JSON rendering (:func:`profiles.dicom.header.header_json`): the
    same header JSON whichever way an instance came in.
    """
    return archive_header_json(ds)


def file_meta(sop_class: str, sop_instance: str, syntax: UID, source_ae: str) -> FileMetaDataset:
    """PS3.10 7.1 File Meta Information for a received data set, naming the AE it came from."""
    meta = create_file_meta(sop_class_uid=UID(sop_class), sop_instance_uid=UID(sop_instance), transfer_syntax=syntax)
    if source_ae:
        meta.SourceApplicationEntityTitle = source_ae
    return meta


#: the file meta elements :func:`file_meta` makes, with the byte that pads an odd value (PS3.5 6.2)
_META_PADDING = {0x00020002: b"\x00", 0x00020003: b"\x00", 0x00020010: b"\x00", 0x00020012: b"\x00",
                 0x00020013: b" ", 0x00020016: b" "}  # fmt: skip
_META_VERSION = struct.pack("<HH2sHL", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01"


def encode_meta(meta: FileMetaDataset) -> bytes:
    """``meta`` as pydicom encodes it (explicit VR little endian, group length first), without pydicom.

    It runs once per received instance, where pydicom's writer costs about
    0.3 ms; a file meta with other elements or values than :func:`file_meta`
    makes (not plain ASCII text) is left to pydicom.
    """
    parts = [_META_VERSION]
    for tag in sorted(meta.keys()):
        if int(tag) in (0x00020000, 0x00020001):
            continue
        element = meta[tag]
        pad = _META_PADDING.get(int(tag))
        value = element.value
        if pad is None or not isinstance(value, str) or not value.isascii():
            return encode_file_meta(meta)
        raw = value.encode("ascii")
        if len(raw) % 2:
            raw += pad
        if len(raw) > 0xFFFF:
            return encode_file_meta(meta)
        parts.append(struct.pack("<HH2sH", 0x0002, int(tag) & 0xFFFF, element.VR.encode("ascii"), len(raw)) + raw)
    version = meta.get_item(0x00020001)
    if version is not None and meta[0x00020001].value != b"\x00\x01":
        return encode_file_meta(meta)
    body = b"".join(parts)
    return struct.pack("<HH2sHL", 0x0002, 0x0000, b"UL", 4, len(body)) + body


def write_part10(path: Path, meta: FileMetaDataset, data: bytes | memoryview) -> None:
    """Preamble, file meta and the data set's bytes as received: nothing is re-encoded."""
    with open(path, "xb") as out:
        out.write(PREAMBLE)
        out.write(encode_meta(meta))
        out.write(data)
