"""Instance headers read without their pixel data, and written as the DICOM JSON model (PS3.18 F.2).

A web viewer asks for a 300-instance series' metadata before it shows
anything, so the header is read with ``stop_before_pixels`` and ``defer_size``:
pixel data, overlays and large private blobs are never read, only skipped.
Where the pixel data element starts is read from the 8 or 12 bytes pydicom
stopped in front of, so frames can later be read by seeking, not by loading
the file. :func:`to_json` is pydicom's DICOM JSON (QIDO-RS results, and the
reference the fast metadata walk of :mod:`.metadata` is tested against), with
binary attributes above a threshold as a ``BulkDataURI`` or left out, judged
from the raw element's length so a deferred value is never loaded just to be
measured.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

log = logging.getLogger("esb.adapters.dicomweb")

#: Pixel Data, Float Pixel Data, Double Float Pixel Data
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
PIXEL_DATA = 0x7FE00010
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: explicit VRs whose length field is 4 bytes after 2 reserved ones (PS3.5 7.1.2)
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})
UNDEFINED_LENGTH = 0xFFFFFFFF
#: values longer than this stay in the file until asked for
DEFER_SIZE = 1024
#: (tag, item index, tag, ...) from the top of an instance to one attribute
TagPath = tuple[int, ...]
BulkUri = Callable[[TagPath], str]


class NotDicomError(ValueError):
    """The bytes are not a DICOM Part 10 file pydicom can read."""


@dataclass(frozen=True)
class PixelElement:
    """Where an instance's pixel data value is in its file (a deflated file has no such place)."""

    tag: int
    vr: str
    #: file offset of the first value byte
    offset: int
    #: value length; UNDEFINED_LENGTH for encapsulated (compressed) pixel data
    length: int

    @property
    def encapsulated(self) -> bool:
        return self.length == UNDEFINED_LENGTH


@dataclass
class Header:
    """An instance's attributes up to its pixel data, and where that pixel data is."""

    dataset: Dataset
    transfer_syntax: str
    pixels: PixelElement | None
    #: a deflated data set cannot be sought into: its pixel data, if any, is read with the rest
    deflated: bool = False

    @property
    def implicit(self) -> bool:
        return self.transfer_syntax == ImplicitVRLittleEndian

    @property
    def little_endian(self) -> bool:
        return self.transfer_syntax != "1.2.840.10008.1.2.2"


def read_header(fp: BinaryIO, *, defer_size: int = DEFER_SIZE) -> Header:
    """The header of the Part 10 file in ``fp``; ``fp`` must stay open while deferred values are read."""
    fp.seek(0)
    try:
        ds = dcmread(fp, stop_before_pixels=True, defer_size=defer_size)
    except (InvalidDicomError, EOFError, ValueError, KeyError, struct.error, NotImplementedError) as exc:
        raise NotDicomError(f"not a readable DICOM Part 10 file: {exc}") from None
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not syntax:
        raise NotDicomError("the file has no Transfer Syntax UID in its meta information")
    header = Header(ds, syntax, None, deflated=syntax == DeflatedExplicitVRLittleEndian)
    if not header.deflated:
        header.pixels = _pixel_element(fp, implicit=header.implicit, little_endian=header.little_endian)
    elif "PixelData" in dcmread(_rewound(fp), specific_tags=[BaseTag(PIXEL_DATA)]):
        header.pixels = PixelElement(PIXEL_DATA, "OW" if ds.get("BitsAllocated", 8) > 8 else "OB", -1, 0)
    return header


def _rewound(fp: BinaryIO) -> BinaryIO:
    fp.seek(0)
    return fp


def _pixel_element(fp: BinaryIO, *, implicit: bool, little_endian: bool) -> PixelElement | None:
    """The element pydicom stopped in front of (``stop_before_pixels`` rewinds to its tag)."""
    start = fp.tell()
    head = fp.read(8)
    if len(head) < 8:
        return None
    order = "<" if little_endian else ">"
    group, element = struct.unpack(f"{order}HH", head[:4])
    tag = group << 16 | element
    if tag not in PIXEL_TAGS:
        return None
    if implicit:
        (length,) = struct.unpack(f"{order}L", head[4:8])
        vr = "OW" if tag == PIXEL_DATA else ("OF" if tag == 0x7FE00008 else "OD")
        return PixelElement(tag, vr, start + 8, length)
    vr = head[4:6].decode("ascii", "replace")
    if vr in LONG_VRS:
        more = fp.read(4)
        if len(more) < 4:
            return None
        (length,) = struct.unpack(f"{order}L", more)
        return PixelElement(tag, vr, start + 12, length)
    (length,) = struct.unpack(f"{order}H", head[6:8])
    return PixelElement(tag, vr, start + 8, length)


def _element_vr(raw: DataElement | RawDataElement, tag: int) -> str:
    vr = raw.VR
    if vr:
        return str(vr)
    try:
        known = dictionary_VR(tag)
    except KeyError:
        return "UN"
    # implicit VR: an ambiguous binary VR is OW (PS3.5 A.1: implicit VR pixel data is OW)
    return "OW" if "OW" in known else known.split(" or ")[0]


def _length(raw: DataElement | RawDataElement) -> int:
    if isinstance(raw, RawDataElement):
        return int(raw.length)
    value = raw.value
    return len(value) if isinstance(value, bytes | bytearray) else 0


def to_json(
    ds: Dataset,
    *,
    bulk: BulkUri | None = None,
    threshold: int = DEFER_SIZE,
    path: TagPath = (),
) -> dict[str, Any]:
    """``ds`` in the DICOM JSON model; binary values over ``threshold`` bytes as ``bulk(path)`` URIs.

    Without ``bulk`` such values are left out (the exchange body: header only).
    Group lengths are left out (retired, and wrong once anything is left out).
    """
    out: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        if tag.element == 0 or tag.group == 2:
            continue
        raw = ds.get_item(tag, keep_deferred=True)
        if raw is None or isinstance(raw, Dataset):
            continue
        key = f"{int(tag):08X}"
        vr = _element_vr(raw, tag)
        if tag in PIXEL_TAGS or (vr in BINARY_VRS and _length(raw) > threshold):
            if bulk is not None:
                out[key] = {"vr": vr, "BulkDataURI": bulk((*path, tag))}
            continue
        try:
            element = ds[tag]
            if element.VR == "SQ":
                items = [
                    to_json(item, bulk=bulk, threshold=threshold, path=(*path, int(tag), index))
                    for index, item in enumerate(element.value)
                ]
                out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
            else:
                out[key] = element.to_json_dict(None, threshold)
        except Exception as exc:  # one unreadable value must not cost the whole header
            log.debug("attribute %s left out of the DICOM JSON: %s", key, exc)
    return out


def element_at(ds: Dataset, path: TagPath) -> DataElement | None:
    """The attribute a bulk data path names (tags and item indexes alternating), or None."""
    current: Dataset = ds
    for position, step in enumerate(path):
        if position % 2 == 1:
            continue
        if step not in current:
            return None
        element = current[step]
        if position == len(path) - 1:
            return element
        index = path[position + 1] if position + 1 < len(path) else -1
        if element.VR != "SQ" or not 0 <= index < len(element.value):
            return None
        current = element.value[index]
    return None
