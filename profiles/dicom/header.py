"""Reading the header of a Part 10 file, never its pixel data, and refusing files that are not whole.

The archive indexes what is before (7FE0,0010) and keeps the bytes as
received, so ingest costs a header parse and no decode. pydicom tolerates a
truncated file (it logs a warning and returns what it read), which would put a
short file in the archive: :func:`read_header` checks that the last element
ends where the file ends, or that the pixel data fits in the file (for
encapsulated pixel data, by walking the fragment headers: seeks, no reads of
the frames).

pydicom's read-time value validation is turned off (process-wide, at
import): an archive takes what modalities send, and that validation logs the
offending value (a patient name, say) at WARNING, which the engine must not.

Refusals carry the C-STORE status to answer (PS3.4 B.2.3, PS3.7 C): 0xC000
cannot understand (not DICOM, truncated, unreadable), 0xA900 data set does not
match SOP class (identifying UIDs missing, invalid or not matching the file
meta), 0x0122 SOP class not supported (not a storage class).
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import config as pydicom_config
from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import AMBIGUOUS_VR
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from esb.errors import DicomError

pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

#: elements longer than this stay on disk while the header is read (large private blobs, overlays)
DEFER_SIZE = 256 * 1024
#: binary elements longer than this are bulk data: left out of the header JSON (or given a BulkDataURI)
BULK_THRESHOLD = 1024
#: PS3.5 9.1 (leading zeros tolerated: senders do write them)
UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
ITEM, SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
#: explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
LONG_LENGTH_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})

CANNOT_UNDERSTAND, DOES_NOT_MATCH, NOT_SUPPORTED, OUT_OF_RESOURCES = 0xC000, 0xA900, 0x0122, 0xA700


@dataclass(frozen=True)
class Header:
    """The header of one Part 10 file and the UIDs that identify the instance."""

    dataset: Dataset
    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str


def is_storage_class(uid: str) -> bool:
    """A Storage SOP Class (PS3.4 Annex B) known to pynetdicom, or registered with it."""
    return uid_to_service_class(uid) is StorageServiceClass


#: headers parsed by whoever wrote the file, by its path: (device, inode, size, mtime) and the header
_PARSED: dict[str, tuple[tuple[int, int, int, int], Dataset]] = {}
#: headers held at most (then forgotten all at once: a forgotten one is read from its file)
PARSED_MEMORY = 128


def _identity(path: str | os.PathLike[str]) -> tuple[int, int, int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def remember_header(path: str | os.PathLike[str], ds: Dataset) -> None:
    """``path`` was just written from bytes checked whole, whose header parsed into ``ds`` (with its file meta).

    The ``dicom:`` consumer parses each received header (for the exchange's
    body) and writes the spool file the archive then stores: :func:`read_header`
    takes this header instead of parsing the file again, once, and only while
    the file is the very one written (same inode, size and modification time;
    a file transcoded or replaced meanwhile is read again). A header with an
    element :func:`read_header` would have left on disk (over ``DEFER_SIZE``)
    is not remembered, so either way the archive sees the same header.
    """
    for tag in ds.keys():
        element = ds.get_item(tag, keep_deferred=True)
        if not isinstance(element, RawDataElement) or element.length == 0xFFFFFFFF:
            continue  # converted already (the character set) or read item by item: never deferred whole
        if element.length > DEFER_SIZE and tag != 0x00080005:
            return
    try:
        identity = _identity(path)
    except OSError:
        return
    if len(_PARSED) >= PARSED_MEMORY:
        _PARSED.clear()
    _PARSED[os.fspath(path)] = (identity, ds)


def _parsed(path: str | os.PathLike[str]) -> Dataset | None:
    found = _PARSED.pop(os.fspath(path), None)
    if found is None:
        return None
    try:
        return found[1] if _identity(path) == found[0] else None
    except OSError:
        return None


def read_header(path: str | os.PathLike[str]) -> Header:
    """The header of the file at ``path``; DicomError (with its C-STORE status) when the archive must refuse it."""
    name = Path(path).name
    remembered = _parsed(path)
    if remembered is not None:
        try:
            return identify(remembered)
        except DicomError:
            raise
        except Exception as exc:
            raise DicomError(f"{name} is not a readable DICOM file ({type(exc).__name__})") from exc
    try:
        size = os.path.getsize(path)
        fp = open(path, "rb")
    except OSError as exc:
        raise DicomError(f"cannot read {name}: {exc.strerror or exc}", status=OUT_OF_RESOURCES) from exc
    with fp:
        try:
            ds = dcmread(fp, stop_before_pixels=True, defer_size=DEFER_SIZE)
            _check_extent(fp, ds, size)
            return identify(ds)
        except DicomError:
            raise
        except Exception as exc:  # whatever a damaged file makes the parser raise
            raise DicomError(f"{name} is not a readable DICOM file ({type(exc).__name__})") from exc


def identify(ds: Dataset, *, transfer_syntax: str = "") -> Header:
    """The identifying UIDs of ``ds`` (a file's header, or the attributes of an instance known from elsewhere)."""
    meta = getattr(ds, "file_meta", None) or Dataset()
    uids: dict[str, str] = {}
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = str(ds.get(keyword) or "").strip()
        if not value:
            raise DicomError(f"the data set has no {keyword}", status=DOES_NOT_MATCH)
        if len(value) > 64 or not UID_PATTERN.fullmatch(value):
            raise DicomError(f"{keyword} is not a valid UID", status=DOES_NOT_MATCH)
        uids[keyword] = value
    for keyword, meta_keyword in (
        ("SOPClassUID", "MediaStorageSOPClassUID"),
        ("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
    ):
        declared = str(meta.get(meta_keyword) or "").strip()
        if declared and declared != uids[keyword]:
            raise DicomError(f"{keyword} differs from {meta_keyword} of the file meta", status=DOES_NOT_MATCH)
    if not is_storage_class(uids["SOPClassUID"]):
        raise DicomError(f"SOP class {uids['SOPClassUID']} is not a storage SOP class", status=NOT_SUPPORTED)
    syntax = transfer_syntax or str(meta.get("TransferSyntaxUID") or ImplicitVRLittleEndian)
    return Header(
        ds, syntax, uids["SOPClassUID"], uids["SOPInstanceUID"], uids["StudyInstanceUID"], uids["SeriesInstanceUID"]
    )


def _check_extent(fp: BinaryIO, ds: Dataset, size: int) -> None:
    """DicomError unless the data set is whole: pydicom reads a truncated file without complaint."""
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID") or ImplicitVRLittleEndian))
    if syntax == DeflatedExplicitVRLittleEndian:
        _check_deflated(fp, ds)
        return
    order = "<" if syntax.is_little_endian else ">"
    if fp.tell() < size:  # stopped before the pixel data
        _check_pixel_data(fp, order, syntax.is_implicit_VR, size)
        _check_tail(fp, order, syntax.is_implicit_VR, size)
        return
    if not len(ds):
        raise DicomError("the file holds no data set")
    last = ds.get_item(BaseTag(max(ds.keys())))
    if not isinstance(last, RawDataElement):
        return
    if last.length == 0xFFFFFFFF:
        fp.seek(size - 8)
        if fp.read(8) != struct.pack(f"{order}HHL", 0xFFFE, 0xE0DD, 0):
            raise DicomError("the file ends inside a sequence (truncated)")
    elif last.value_tell + last.length != size:
        raise DicomError("the file ends inside a data element (truncated)")


def _check_deflated(fp: BinaryIO, ds: Dataset) -> None:
    """The deflate stream must reach its end marker (a cut stream may still inflate)."""
    meta_length = int(ds.file_meta.get("FileMetaInformationGroupLength") or 0)
    fp.seek(128 + 4 + 12 + meta_length)
    stream = zlib.decompressobj(-zlib.MAX_WBITS)
    while chunk := fp.read(1024 * 1024):
        stream.decompress(chunk, 0)
        while stream.unconsumed_tail:
            stream.decompress(stream.unconsumed_tail, 1024 * 1024)
    if not stream.eof:
        raise DicomError("the deflated data set has no end (truncated)")


def _check_pixel_data(fp: BinaryIO, order: str, implicit: bool, size: int) -> None:
    tag, length = _element_header(fp, order, implicit)
    if tag not in PIXEL_TAGS:
        raise DicomError("unexpected data after the header")
    if length != 0xFFFFFFFF:
        if fp.tell() + length > size:
            raise DicomError("the pixel data is shorter than its length (truncated)")
        fp.seek(length, os.SEEK_CUR)
        return
    while True:  # encapsulated: item headers up to the sequence delimiter
        item = fp.read(8)
        if len(item) < 8:
            raise DicomError("the encapsulated pixel data has no end (truncated)")
        group, element, length = struct.unpack(f"{order}HHL", item)
        tag = group << 16 | element
        if tag == SEQUENCE_END:
            return
        if tag != ITEM or fp.tell() + length > size:
            raise DicomError("the encapsulated pixel data is damaged or truncated")
        fp.seek(length, os.SEEK_CUR)


def _check_tail(fp: BinaryIO, order: str, implicit: bool, size: int) -> None:
    """Elements after the pixel data (padding, signatures) must end with the file, too."""
    while fp.tell() < size:
        _tag, length = _element_header(fp, order, implicit)
        if length == 0xFFFFFFFF:
            return  # a sequence of undefined length: not walked (rare after pixel data)
        if fp.tell() + length > size:
            raise DicomError("the file ends inside a data element (truncated)")
        fp.seek(length, os.SEEK_CUR)


def _element_header(fp: BinaryIO, order: str, implicit: bool) -> tuple[int, int]:
    """(tag, value length) of the element at the file position, which is left at its value."""
    head = fp.read(8)
    if len(head) < 8:
        raise DicomError("the file ends inside a data element header (truncated)")
    group, element = struct.unpack(f"{order}HH", head[:4])
    if implicit:
        return group << 16 | element, struct.unpack(f"{order}L", head[4:8])[0]
    if head[4:6] in LONG_LENGTH_VRS:
        extra = fp.read(4)
        if len(extra) < 4:
            raise DicomError("the file ends inside a data element header (truncated)")
        return group << 16 | element, struct.unpack(f"{order}L", extra)[0]
    return group << 16 | element, struct.unpack(f"{order}H", head[6:8])[0]


def header_json(
    ds: Dataset,
    *,
    bulk_data_uri: Callable[[DataElement], str] | None = None,
    threshold: int = BULK_THRESHOLD,
) -> bytes:
    """The header as DICOM JSON (PS3.18 F.2): pixel data left out, other bulk data left out or given by URI.

    Call it while the file read by :func:`read_header` is still in place:
    non-binary elements deferred at read time (a very large SR content tree)
    are read from it then.

    Every received instance gets its header converted (it is the exchange's
    body), and the instances of a series share most of their elements: an
    element's JSON is remembered by what it is converted from (its tag, VR
    and bytes, and the data set's encoding, character set and pixel
    representation), so the next instance of the series converts only the
    elements that differ (:func:`_memo_key` says which may be remembered).
    """
    kept = Dataset()
    uris: dict[str, dict[str, Any]] = {}
    known: dict[str, dict[str, Any]] = {}
    context = _conversion_context(ds) if bulk_data_uri is None and threshold == BULK_THRESHOLD else None
    pending: dict[str, tuple[Any, ...]] = {}
    for tag in ds.keys():
        if tag in PIXEL_TAGS:
            continue
        raw = ds.get_item(tag)
        deferred = isinstance(raw, RawDataElement) and raw.value is None and raw.length not in (0, 0xFFFFFFFF)
        vr = raw.VR or _dictionary_vr(tag)
        if deferred and vr in BINARY_VRS:
            if bulk_data_uri is not None:
                uris[f"{int(tag):08X}"] = {"vr": vr, "BulkDataURI": bulk_data_uri(DataElement(tag, vr, None))}
            continue
        key = _memo_key(context, raw) if context is not None else None
        if key is not None:
            found = _ELEMENT_JSON.get(key, _UNKNOWN)
            if found is not _UNKNOWN:
                if found is not None:
                    known[f"{int(tag):08X}"] = found
                continue
            pending[f"{int(tag):08X}"] = key
        kept.add(ds[tag])
    marker = "\x00bulk"
    handler = bulk_data_uri or (lambda _element: marker)
    document = kept.to_json_dict(bulk_data_threshold=threshold, bulk_data_element_handler=handler)
    if bulk_data_uri is None:
        _drop_marked(document, marker)
    _remember({name: document.get(name) for name in pending}, pending)
    document.update(known)
    document.update(uris)
    return json.dumps(dict(sorted(document.items())), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


#: JSON of header elements by what it was converted from; None: an element left out (bulk data)
_ELEMENT_JSON: dict[tuple[Any, ...], dict[str, Any] | None] = {}
_UNKNOWN: Any = object()
#: elements remembered at most (then forgotten all at once), and the largest value remembered
ELEMENT_MEMORY, ELEMENT_MEMORY_VALUE = 4096, 1024
#: tags whose values change how other elements convert: character set, pixel representation, bits allocated
_CONTEXT_TAGS = (0x00080005, 0x00280103, 0x00280100)


def _plain(element: Any) -> Any:
    if element is None:
        return None
    value = element.value
    return tuple(value) if isinstance(value, MultiValue | list | tuple) else value


def _conversion_context(ds: Dataset) -> tuple[Any, ...]:
    """What converting an element depends on besides its own tag, VR and bytes."""
    charset = ds.original_character_set
    return (
        getattr(ds, "original_encoding", None),
        tuple(charset) if isinstance(charset, list) else charset,
        *(_plain(ds.get_item(tag)) for tag in _CONTEXT_TAGS),
    )


def _memo_key(context: tuple[Any, ...], raw: Any) -> tuple[Any, ...] | None:
    """The key an element's JSON is remembered by; None when its conversion depends on more than the key says.

    Only raw elements with an explicit, unambiguous VR: an implicit VR, ``UN``
    (a private VR looked up by its creator) or ``US or SS`` and the like
    depend on other elements of the data set.
    """
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
        return None
    if raw.VR is None or raw.VR == "UN" or raw.VR in AMBIGUOUS_VR or len(raw.value) > ELEMENT_MEMORY_VALUE:
        return None
    return (context, int(raw.tag), raw.VR, raw.value)


def _remember(converted: dict[str, dict[str, Any] | None], keys: dict[str, tuple[Any, ...]]) -> None:
    if len(_ELEMENT_JSON) + len(keys) > ELEMENT_MEMORY:
        _ELEMENT_JSON.clear()
    for name, key in keys.items():
        _ELEMENT_JSON[key] = converted[name]


def _dictionary_vr(tag: BaseTag) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _drop_marked(document: dict[str, Any], marker: str) -> None:
    for key in [k for k, v in document.items() if v.get("BulkDataURI") == marker]:
        del document[key]
    for value in document.values():
        if value.get("vr") == "SQ":
            for item in value.get("Value", []):
                if isinstance(item, dict):
                    _drop_marked(item, marker)
