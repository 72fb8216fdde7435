"""Frames read from an instance file by seeking, not by loading it, and their media types.

Native pixel data is sliced at ``offset + index * frame size``; encapsulated
pixel data is walked fragment by fragment from the pixel data value with
pydicom's ``encaps.get_frame`` (the Basic Offset Table, when there is one,
lets it jump). A deflated file cannot be sought into and is read whole. The
compressed bytes are sent as they are, with the media type of their transfer
syntax (PS3.18 Table 8.7.3-5); only a client that insists on uncompressed
frames gets a frame decoded by pydicom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.encaps import get_frame
from pydicom.pixels.utils import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from adapters.dicomweb.dicomjson import Header, read_header

BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
#: transfer syntaxes whose pixel data is native (a frame is a slice of the value)
NATIVE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, BIG_ENDIAN, DEFLATED})

#: compressed transfer syntax -> media type of its frames (PS3.18 Table 8.7.3-5)
FRAME_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


class FrameError(LookupError):
    """A frame number the instance does not have, or an instance without pixel data (404)."""


def media_type(transfer_syntax: str) -> str:
    """The media type of one frame stored in ``transfer_syntax``."""
    if transfer_syntax in NATIVE:
        return "application/octet-stream"
    return FRAME_MEDIA_TYPES.get(transfer_syntax, "application/octet-stream")


@dataclass(frozen=True)
class Geometry:
    frames: int
    #: bits of one frame (BitsAllocated 1 packs frames without byte alignment)
    frame_bits: int
    bits_allocated: int

    @classmethod
    def of(cls, header: Header) -> Geometry:
        ds = header.dataset
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.get("BitsAllocated", 8) or 8)
        size = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * int(ds.get("SamplesPerPixel", 1) or 1)
        return cls(frames, size * bits, bits)


def frame_count(header: Header) -> int:
    return Geometry.of(header).frames if header.pixels is not None else 0


def check_numbers(header: Header, numbers: list[int]) -> None:
    count = frame_count(header)
    if count == 0:
        raise FrameError("the instance has no pixel data")
    wrong = [n for n in numbers if not 1 <= n <= count]
    if wrong:
        raise FrameError(f"frame {wrong[0]} does not exist (the instance has {count} frames)")


def read_frame(fp: BinaryIO, header: Header, number: int) -> bytes:
    """Frame ``number`` (1-based) as stored: native frames little endian, compressed ones as encoded."""
    pixels = header.pixels
    assert pixels is not None
    geometry = Geometry.of(header)
    if header.deflated or pixels.offset < 0:
        fp.seek(0)
        data: bytes = dcmread(fp).PixelData
        if header.transfer_syntax in NATIVE:
            return _native(data, geometry, number, little_endian=True)
        return get_frame(data, number - 1, number_of_frames=geometry.frames)
    if pixels.encapsulated:
        fp.seek(pixels.offset)
        return get_frame(fp, number - 1, number_of_frames=geometry.frames)
    first_bit = (number - 1) * geometry.frame_bits
    start, end = first_bit // 8, -(-(first_bit + geometry.frame_bits) // 8)
    fp.seek(pixels.offset + start)
    chunk = fp.read(end - start)
    return _native(chunk, geometry, number, little_endian=header.little_endian, sliced=True)


def _native(data: bytes, geometry: Geometry, number: int, *, little_endian: bool, sliced: bool = False) -> bytes:
    """One native frame out of ``data`` (the whole value, or the bytes covering the frame when ``sliced``)."""
    first_bit = (number - 1) * geometry.frame_bits
    if geometry.bits_allocated == 1:
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        skip = first_bit % 8 if sliced else first_bit
        return np.packbits(bits[skip : skip + geometry.frame_bits], bitorder="little").tobytes()
    frame = data if sliced else data[first_bit // 8 : (first_bit + geometry.frame_bits) // 8]
    if not little_endian and geometry.bits_allocated in (16, 32, 64):
        width = geometry.bits_allocated // 8
        return np.frombuffer(frame, f">u{width}").astype(f"<u{width}").tobytes()
    return frame


def decoded_frame(fp: BinaryIO, number: int) -> bytes:
    """Frame ``number`` decoded to native little endian (colour as RGB): for clients that refuse compression."""
    fp.seek(0)
    array = pixel_array(fp, index=number - 1)
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def read_frames(fp: BinaryIO, numbers: list[int]) -> tuple[Header, list[bytes]]:
    """The header and the frames ``numbers`` of the instance in ``fp``; FrameError for a frame it lacks."""
    header = read_header(fp)
    check_numbers(header, numbers)
    return header, [read_frame(fp, header, n) for n in numbers]
