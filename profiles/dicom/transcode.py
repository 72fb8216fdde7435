"""Transfer-syntax conversion on retrieval and by policy, and image files wrapped as Secondary Capture.

Retrieval (RAD-69, WADO, C-MOVE/C-GET) hands out an instance in a syntax the
requester accepts; :func:`negotiate` picks one (the stored syntax when
accepted, else the first lossless one the requester lists, lossy only when
allowed) and :func:`transcode` produces it. Lossless targets are JPEG-LS,
JPEG 2000 and RLE (pydicom with pyjpegls / pylibjpeg-openjpeg, pixels come
back bit for bit); lossy ones are JPEG baseline (Pillow: pydicom has no
baseline encoder), JPEG 2000 and JPEG-LS near-lossless; any decodable syntax
goes back to Explicit or Implicit VR Little Endian or Deflate.

The SOP Instance UID is kept: RAD-69 and WADO name the instance by it, and a
transfer syntax is an encoding of the same instance (pydicom makes a new UID
by default, which would break that). A lossy result is marked as PS3.3
C.7.6.1.1.5 requires (Lossy Image Compression ``01``, ratio and method
appended, never reset). Objects without pixel data (SR, KOS, PDF) only move
between the uncompressed syntaxes: compressed syntaxes on them confuse other
software (Orthanc learned this the hard way).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.JpegImagePlugin import get_sampling
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.encoders.base import ENCODING_PROFILES
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

from esb.errors import DicomError

__all__ = [
    "LOSSLESS",
    "LOSSY",
    "PRODUCIBLE",
    "UNCOMPRESSED",
    "PixelInfo",
    "TranscodePolicy",
    "negotiate",
    "pixel_info",
    "producible",
    "transcode",
]

#: the uncompressed syntaxes every instance can be written in
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
#: compressed syntaxes that give the pixels back exactly
LOSSLESS = (JPEGLSLossless, JPEG2000Lossless, RLELossless)
#: compressed syntaxes that lose information (offered only when a policy allows)
LOSSY = (JPEGBaseline8Bit, JPEG2000, JPEGLSNearLossless)
#: every syntax :func:`transcode` can write
PRODUCIBLE = (*UNCOMPRESSED, *LOSSLESS, *LOSSY)
#: Lossy Image Compression Method (0028,2114) per syntax (PS3.3 C.7.6.1.1.5.1)
LOSSY_METHOD: dict[str, str] = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEG2000: "ISO_15444_1",
    JPEGLSNearLossless: "ISO_14495_1",
}
#: syntaxes whose pixels were already lossy when decoded (a decoded copy keeps that mark)
LOSSY_SOURCES = frozenset(
    {
        *LOSSY,
        "1.2.840.10008.1.2.4.51",  # JPEG extended
        "1.2.840.10008.1.2.4.201",  # HTJ2K (lossy)
        "1.2.840.10008.1.2.4.100",  # MPEG2 and the other video syntaxes
        "1.2.840.10008.1.2.4.101",
        "1.2.840.10008.1.2.4.102",
        "1.2.840.10008.1.2.4.103",
        "1.2.840.10008.1.2.4.104",
        "1.2.840.10008.1.2.4.105",
        "1.2.840.10008.1.2.4.106",
        "1.2.840.10008.1.2.4.107",
        "1.2.840.10008.1.2.4.108",
    }
)
BIG_ENDIAN = "1.2.840.10008.1.2.2"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class PixelInfo:
    """What decides which syntaxes an instance can be written in."""

    has_pixels: bool
    photometric: str = ""
    samples_per_pixel: int = 1
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    #: False for Float/Double Float Pixel Data, which no compressed syntax carries
    integer_pixels: bool = True


def pixel_info(ds: Dataset) -> PixelInfo:
    """The pixel description of a dataset (read without deferring: the pixel data tag must be seen)."""
    present = [k for k in PIXEL_KEYWORDS if k in ds]
    if not present:
        return PixelInfo(has_pixels=False)
    return PixelInfo(
        has_pixels=True,
        photometric=str(ds.get("PhotometricInterpretation", "")),
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1)),
        bits_allocated=int(ds.get("BitsAllocated", 0)),
        bits_stored=int(ds.get("BitsStored", ds.get("BitsAllocated", 0))),
        pixel_representation=int(ds.get("PixelRepresentation", 0)),
        integer_pixels=present == ["PixelData"],
    )


def _decoded_photometric(photometric: str, samples: int) -> str:
    """The photometric interpretation after decoding (pydicom converts YCbCr to RGB)."""
    if samples == 3 and photometric.startswith("YBR"):
        return "RGB"
    return photometric


def producible(info: PixelInfo, syntax: str) -> bool:
    """Whether :func:`transcode` can write an instance described by ``info`` in ``syntax``."""
    if syntax in UNCOMPRESSED:
        return True
    if syntax not in PRODUCIBLE or not info.has_pixels or not info.integer_pixels:
        return False
    photometric = _decoded_photometric(info.photometric, info.samples_per_pixel)
    if syntax == JPEGBaseline8Bit:
        # Pillow writes 8-bit greyscale or YCbCr 4:2:2 from RGB; a palette's indices must never be lossy
        return (info.bits_allocated, info.bits_stored, info.pixel_representation) == (8, 8, 0) and (
            info.samples_per_pixel,
            photometric,
        ) in ((1, "MONOCHROME1"), (1, "MONOCHROME2"), (3, "RGB"))
    if syntax in LOSSY and photometric == "PALETTE COLOR":
        return False
    for name, samples, representations, allocated, stored in ENCODING_PROFILES[UID(syntax)]:
        if (
            name == photometric
            and samples == info.samples_per_pixel
            and info.pixel_representation in representations
            and info.bits_allocated in allocated
            and info.bits_stored in stored
        ):
            return True
    return False


@dataclass(frozen=True)
class TranscodePolicy:
    """How the archive stores and hands out instances.

    ``store_as`` empty keeps what was received (the default: bytes are written
    once, never decoded on the receive path); a lossless syntax there trades
    CPU at ingest for disk. ``allow_lossy`` lets retrieval produce a lossy
    syntax when the requester accepts nothing lossless we can write.
    """

    store_as: str = ""
    allow_lossy: bool = True
    #: JPEG baseline quality (Pillow, 1-95)
    jpeg_quality: int = 90
    #: JPEG 2000 lossy compression ratio
    j2k_ratio: float = 10.0
    #: JPEG-LS near-lossless: largest absolute error per sample
    jls_error: int = 2

    def __post_init__(self) -> None:
        if self.store_as and self.store_as not in (*UNCOMPRESSED, *LOSSLESS):
            raise ValueError(f"store_as must be an uncompressed or lossless syntax, not {self.store_as!r}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be 1..95 (got {self.jpeg_quality})")

    def storage_syntax(self, received: str, info: PixelInfo) -> str | None:
        """The syntax to store a received instance in, or None to keep it as it came."""
        if not self.store_as or received == self.store_as or not producible(info, self.store_as):
            return None
        if received in LOSSY_SOURCES:
            return None  # re-encoding lossy pixels losslessly only grows them
        return self.store_as


def negotiate(current: str, accepted: Sequence[str], info: PixelInfo, *, allow_lossy: bool = True) -> str | None:
    """The syntax to send: the stored one if accepted, else the requester's first lossless, else lossy; or None.

    A lossy instance may be decoded to a lossless or uncompressed syntax (its
    pixels stay what they are, and stay marked lossy).
    """
    if current in accepted:
        return current
    candidates = [ts for ts in accepted if producible(info, ts)]
    exact = [ts for ts in candidates if ts not in LOSSY]
    if exact:
        return exact[0]
    lossy = [ts for ts in candidates if ts in LOSSY]
    return lossy[0] if lossy and allow_lossy else None


def transcode(source: Path | str | bytes, transfer_syntax: str, *, policy: TranscodePolicy | None = None) -> bytes:
    """The Part 10 bytes of ``source`` in ``transfer_syntax`` (unchanged bytes when already in it).

    Raises :class:`DicomError` (0xC000) when the file cannot be read or
    decoded, and when the instance cannot be written in that syntax.
    """
    policy = policy or TranscodePolicy()
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        ds = dcmread(io.BytesIO(data))
        current = str(ds.file_meta.TransferSyntaxUID)
    except Exception as exc:
        raise DicomError(f"not a readable DICOM file ({type(exc).__name__})") from exc
    if current == transfer_syntax:
        return data
    return encode(ds, transfer_syntax, policy)


def encode(ds: Dataset, transfer_syntax: str, policy: TranscodePolicy) -> bytes:
    """Write a read dataset in ``transfer_syntax`` (decoding its pixels first when they are compressed)."""
    current = str(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    if current == BIG_ENDIAN:
        raise DicomError("Explicit VR Big Endian (retired) instances are not converted", status=0xC000)
    info = pixel_info(ds)
    if not producible(info, transfer_syntax):
        raise DicomError(f"the instance cannot be written in transfer syntax {transfer_syntax}", status=0xC000)
    try:
        if info.has_pixels and UID(current).is_compressed:
            ds.decompress(generate_instance_uid=False)
            if current in LOSSY_SOURCES and ds.get("LossyImageCompression") != "01":
                ds.LossyImageCompression = "01"
        if transfer_syntax in UNCOMPRESSED:
            ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
        elif transfer_syntax == JPEGBaseline8Bit:
            _jpeg_baseline(ds, policy.jpeg_quality)
        else:
            _compress(ds, transfer_syntax, policy)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
    except DicomError:
        raise
    except Exception as exc:
        raise DicomError(f"transcoding to {transfer_syntax} failed ({type(exc).__name__}: {exc})") from exc
    return out.getvalue()


def _pixel_bytes(ds: Dataset) -> int:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * (int(ds.BitsAllocated) // 8) * frames


def _compressed_bytes(ds: Dataset) -> int:
    return len(ds.PixelData)


def _compress(ds: Dataset, syntax: str, policy: TranscodePolicy) -> None:
    options: dict[str, Any] = {}
    if syntax == JPEG2000:
        options["j2k_cr"] = [policy.j2k_ratio]
    elif syntax == JPEGLSNearLossless:
        options["jls_error"] = policy.jls_error
    raw = _pixel_bytes(ds)
    ds.compress(syntax, generate_instance_uid=False, **options)
    if syntax in LOSSY_METHOD:
        _mark_lossy(ds, raw / max(1, _compressed_bytes(ds)), LOSSY_METHOD[syntax])


def _jpeg_baseline(ds: Dataset, quality: int) -> None:
    """JPEG baseline (process 1) with Pillow: greyscale as is, RGB as YCbCr 4:2:2 (YBR_FULL_422)."""
    raw = _pixel_bytes(ds)
    frames_count = int(ds.get("NumberOfFrames", 1) or 1)
    array = ds.pixel_array
    if frames_count == 1:
        array = array[None, ...]
    color = int(ds.SamplesPerPixel) == 3
    frames = []
    for frame in array:
        image = Image.fromarray(frame, "RGB" if color else "L")
        buffer = io.BytesIO()
        # subsampling=1 is 4:2:2, the subsampling YBR_FULL_422 names
        image.save(buffer, format="JPEG", quality=quality, subsampling=1 if color else 0, optimize=False)
        frames.append(buffer.getvalue())
    ds.PixelData = encapsulate(frames)
    element = ds["PixelData"]
    element.VR = "OB"
    element.is_undefined_length = True
    if color:
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PlanarConfiguration = 0
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    _mark_lossy(ds, raw / max(1, sum(len(f) for f in frames)), LOSSY_METHOD[JPEGBaseline8Bit])


def _mark_lossy(ds: Dataset, ratio: float, method: str) -> None:
    """PS3.3 C.7.6.1.1.5: ``01`` once lossy, and one ratio and method appended per lossy step."""
    ratios = list(_values(ds.get("LossyImageCompressionRatio")))
    methods = list(_values(ds.get("LossyImageCompressionMethod")))
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"]
    ds.LossyImageCompressionMethod = [*methods, method]


def _values(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str | int | float):
        return [str(value)]
    return [str(v) for v in value]


# -- image files as Secondary Capture ------------------------------------------------

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
#: Type 2 attributes of the SC Image IOD's Patient, General Study, General Series and General Image modules
_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "SeriesNumber",
    "PatientOrientation",
)


def wrap_image(source: Path | str | bytes, attributes: dict[str, Any], *, conversion_type: str = "DI") -> bytes:
    """A BMP or JPEG file (or another still image Pillow reads) as a Secondary Capture Image (PS3.3 A.8.1).

    ``attributes`` are DICOM keywords (PatientID, IssuerOfPatientID,
    PatientName, StudyInstanceUID, AccessionNumber, ...) copied in; UIDs not
    given are generated. A baseline JPEG is encapsulated as it is (JPEG
    Baseline syntax, no second lossy step); anything else is decoded and
    stored uncompressed (Explicit VR Little Endian), so a BMP keeps its pixels.
    Raises :class:`DicomError` for data that is not an image and ValueError
    for an unknown keyword.
    """
    unknown = sorted(k for k in attributes if tag_for_keyword(k) is None)
    if unknown:
        raise ValueError(f"unknown DICOM keyword(s): {', '.join(unknown)}")
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise DicomError(f"not an image file Pillow can read ({type(exc).__name__})") from exc
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    for keyword in _TYPE2:
        setattr(ds, keyword, "")
    ds.Modality = "OT"
    ds.ConversionType = conversion_type
    ds.InstanceNumber = 1
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.StudyInstanceUID = ds.get("StudyInstanceUID") or generate_uid()
    ds.SeriesInstanceUID = ds.get("SeriesInstanceUID") or generate_uid()
    ds.SOPInstanceUID = ds.get("SOPInstanceUID") or generate_uid()
    ds.SOPClassUID = SECONDARY_CAPTURE
    if any(isinstance(v, str) and not v.isascii() for v in attributes.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.file_meta.MediaStorageSOPClassUID = UID(SECONDARY_CAPTURE)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if image.format == "JPEG" and _baseline_jpeg(data, image):
        _encapsulated_jpeg(ds, data, image)
    else:
        _native_pixels(ds, image)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _sof_marker(data: bytes) -> int | None:
    """The SOFn marker of a JPEG stream (0xC0 baseline, 0xC1 extended, 0xC2 progressive...)."""
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return marker
        index += 2 + int.from_bytes(data[index + 2 : index + 4], "big")
    return None


def _baseline_jpeg(data: bytes, image: Any) -> bool:
    """8-bit baseline greyscale or YCbCr: what the JPEG Baseline syntax carries unchanged."""
    if _sof_marker(data) != 0xC0 or image.mode not in ("L", "RGB"):
        return False
    return bool(image.mode == "L" or image.info.get("adobe_transform") != 0)


def _encapsulated_jpeg(ds: Dataset, data: bytes, image: Any) -> None:
    color = image.mode == "RGB"
    _pixel_module(ds, image.width, image.height, samples=3 if color else 1, bits=8)
    if color:
        # 4:4:4 is not subsampled (YBR_FULL); 4:2:2 and 4:2:0 are what decoders read as YBR_FULL_422
        ds.PhotometricInterpretation = "YBR_FULL" if get_sampling(image) == 0 else "YBR_FULL_422"
    ds.PixelData = encapsulate([data])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"  # the JPEG was lossy before it came to us


def _native_pixels(ds: Dataset, image: Any) -> None:
    if image.mode in ("I;16", "I;16L", "I;16B"):
        array = np.asarray(image, dtype=np.uint16)
        _pixel_module(ds, image.width, image.height, samples=1, bits=16)
    elif image.mode in ("1", "L"):
        array = np.asarray(image.convert("L"), dtype=np.uint8)
        _pixel_module(ds, image.width, image.height, samples=1, bits=8)
    else:  # palette, RGBA, CMYK, YCbCr...: RGB (alpha has no place in a DICOM image)
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        _pixel_module(ds, image.width, image.height, samples=3, bits=8)
    ds.PixelData = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _pixel_module(ds: Dataset, width: int, height: int, *, samples: int, bits: int) -> None:
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.Rows = height
    ds.Columns = width
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
