"""An instance re-encoded in Explicit VR Little Endian, the default transfer syntax of application/dicom.

Only asked for when a client names that transfer syntax (or names none) and
the instance is stored in another: implicit VR and deflate are re-encoded,
big endian pixel data byte-swapped, compressed pixel data decoded by pydicom
(its SOP Instance UID kept: the instance is the same one, as PS3.18 8.7.3.5
expects of a retrieve). The instance is in memory while this runs: one
instance at a time, never a whole study.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian

from adapters.dicomweb.frames import BIG_ENDIAN, NATIVE


def can_transcode(transfer_syntax: str) -> bool:
    """Whether an instance stored in ``transfer_syntax`` can be sent as Explicit VR Little Endian."""
    if transfer_syntax in NATIVE:
        return True
    try:
        return bool(get_decoder(UID(transfer_syntax)).is_available)
    except (NotImplementedError, ValueError):
        return False


def to_explicit_little(fp: BinaryIO) -> bytes:
    """The Part 10 file in ``fp`` re-encoded as Explicit VR Little Endian."""
    ds = dcmread(fp)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        ds.decompress(generate_instance_uid=False)
    elif syntax == BIG_ENDIAN and "PixelData" in ds and int(ds.get("BitsAllocated", 8)) in (16, 32):
        width = int(ds.BitsAllocated) // 8
        ds.PixelData = np.frombuffer(ds.PixelData, f">u{width}").astype(f"<u{width}").tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return out.getvalue()
