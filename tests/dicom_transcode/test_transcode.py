"""Transfer-syntax conversion (profiles.dicom.transcode): round trips, lossy marks, negotiation, SC wrapping.

Pixels are compared with numpy after decoding with pydicom; where dcmtk is
installed its own decoders (dcmdjpls, dcmdjpeg) read what we wrote, so the
codestreams are checked by a second implementation too.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragmented_frames
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from esb.errors import DicomError
from profiles.dicom.transcode import (
    SECONDARY_CAPTURE,
    TranscodePolicy,
    negotiate,
    pixel_info,
    producible,
    transcode,
    wrap_image,
)
from tests.dicom_support import LARGE_CT, SMALL_CT, dcmtk, dcmtk_available, require_dcmtk
from tests.dicom_support import testdata as sample

RGB_US = "US1_UNCR.dcm"  # 640x480 RGB, 8 bits
NO_PIXELS = "rtplan.dcm"  # an RT Plan in Implicit VR: no pixel data


def read(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


def pixels(name: str) -> np.ndarray:
    return np.asarray(dcmread(sample(name)).pixel_array)


def psnr(reference: np.ndarray, other: np.ndarray, peak: float) -> float:
    error = np.mean((reference.astype(np.float64) - other.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(peak**2 / error))


# -- lossless ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [SMALL_CT, LARGE_CT, RGB_US])
@pytest.mark.parametrize("syntax", [JPEGLSLossless, JPEG2000Lossless, RLELossless])
def test_lossless_round_trip_gives_the_pixels_back_bit_for_bit(name: str, syntax: str) -> None:
    original = dcmread(sample(name))
    compressed = transcode(sample(name), syntax)
    ds = read(compressed)
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.SOPInstanceUID == original.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert "LossyImageCompression" not in ds
    assert len(compressed) < len(sample(name).read_bytes())
    assert np.array_equal(ds.pixel_array, original.pixel_array)
    back = read(transcode(compressed, ExplicitVRLittleEndian))
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.PixelData == original.PixelData
    assert back.PatientID == original.PatientID and back.StudyInstanceUID == original.StudyInstanceUID


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian])
def test_uncompressed_syntaxes_keep_every_element(syntax: str) -> None:
    original = dcmread(sample(SMALL_CT))
    ds = read(transcode(sample(SMALL_CT), syntax))
    assert ds.file_meta.TransferSyntaxUID == syntax
    assert ds.PixelData == original.PixelData
    assert {e.tag for e in ds} == {e.tag for e in original}


def test_same_syntax_returns_the_bytes_unchanged() -> None:
    data = sample(SMALL_CT).read_bytes()
    assert transcode(data, ExplicitVRLittleEndian) is data


def test_dcmtk_decodes_our_jpeg_ls_to_the_original_pixels(tmp_path: Path) -> None:
    require_dcmtk()
    source = tmp_path / "ls.dcm"
    source.write_bytes(transcode(sample(LARGE_CT), JPEGLSLossless))
    result = dcmtk("dcmdjpls", source, tmp_path / "plain.dcm")
    assert result.returncode == 0, result.stderr
    decoded = dcmread(tmp_path / "plain.dcm")
    assert decoded.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(decoded.pixel_array, pixels(LARGE_CT))


# -- lossy ------------------------------------------------------------------------------


def test_jpeg_baseline_of_rgb_is_ycbcr_422_close_to_the_original_and_marked_lossy() -> None:
    ds = read(transcode(sample(RGB_US), JPEGBaseline8Bit))
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert (ds.PhotometricInterpretation, ds.PlanarConfiguration) == ("YBR_FULL_422", 0)
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert float(ds.LossyImageCompressionRatio) > 4
    decoded = ds.pixel_array  # pydicom converts YCbCr back to RGB
    original = pixels(RGB_US)
    assert decoded.shape == original.shape
    assert not np.array_equal(decoded, original)
    assert psnr(original, decoded, 255) > 30


def test_jpeg_baseline_is_readable_by_dcmtk(tmp_path: Path) -> None:
    require_dcmtk()
    (tmp_path / "jpeg.dcm").write_bytes(transcode(sample(RGB_US), JPEGBaseline8Bit))
    result = dcmtk("dcmdjpeg", tmp_path / "jpeg.dcm", tmp_path / "plain.dcm")
    assert result.returncode == 0, result.stderr
    decoded = dcmread(tmp_path / "plain.dcm")
    assert psnr(pixels(RGB_US), decoded.pixel_array, 255) > 30


def test_lossy_jpeg_2000_and_near_lossless_jpeg_ls_stay_within_their_bounds() -> None:
    original = pixels(LARGE_CT)
    j2k = read(transcode(sample(LARGE_CT), JPEG2000, policy=TranscodePolicy(j2k_ratio=8)))
    assert j2k.LossyImageCompressionMethod == "ISO_15444_1"
    assert not np.array_equal(j2k.pixel_array, original)
    assert psnr(original, j2k.pixel_array, 2**14) > 40
    near = read(transcode(sample(LARGE_CT), JPEGLSNearLossless, policy=TranscodePolicy(jls_error=3)))
    difference = np.abs(near.pixel_array.astype(np.int32) - original.astype(np.int32))
    assert 0 < difference.max() <= 3
    assert near.LossyImageCompression == "01"


def test_each_lossy_step_is_recorded_and_decoding_keeps_the_mark() -> None:
    once = transcode(sample(SMALL_CT), JPEG2000)
    twice = read(transcode(once, JPEGLSNearLossless))
    assert list(twice.LossyImageCompressionMethod) == ["ISO_15444_1", "ISO_14495_1"]
    assert len(twice.LossyImageCompressionRatio) == 2
    plain = read(transcode(once, ExplicitVRLittleEndian))
    assert plain.LossyImageCompression == "01"
    assert plain.LossyImageCompressionMethod == "ISO_15444_1"


def test_jpeg_baseline_refuses_16_bit_pixels() -> None:
    with pytest.raises(DicomError, match="cannot be written in transfer syntax 1.2.840.10008.1.2.4.50"):
        transcode(sample(SMALL_CT), JPEGBaseline8Bit)


# -- objects without pixels, bad input ------------------------------------------------------


def test_objects_without_pixel_data_only_change_between_uncompressed_syntaxes() -> None:
    data = sample(NO_PIXELS).read_bytes()
    explicit = read(transcode(data, ExplicitVRLittleEndian))
    assert explicit.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert explicit.RTPlanLabel == dcmread(sample(NO_PIXELS)).RTPlanLabel
    info = pixel_info(dcmread(sample(NO_PIXELS)))
    assert not info.has_pixels
    assert not producible(info, JPEGLSLossless)
    with pytest.raises(DicomError):
        transcode(data, JPEGLSLossless)


def test_garbage_is_a_dicom_error() -> None:
    with pytest.raises(DicomError, match="not a readable DICOM file"):
        transcode(b"not dicom at all" * 20, ExplicitVRLittleEndian)


# -- negotiation and policy -------------------------------------------------------------------


def test_negotiate_prefers_the_stored_syntax_then_lossless_in_the_requesters_order() -> None:
    ct = pixel_info(dcmread(sample(SMALL_CT)))
    rgb = pixel_info(dcmread(sample(RGB_US)))
    assert negotiate(ExplicitVRLittleEndian, [JPEGLSLossless, ExplicitVRLittleEndian], ct) == ExplicitVRLittleEndian
    assert negotiate(JPEGLSLossless, [JPEG2000Lossless, JPEGLSNearLossless], ct) == JPEG2000Lossless
    assert negotiate(ExplicitVRLittleEndian, [JPEGBaseline8Bit, JPEGLSLossless], rgb) == JPEGLSLossless
    assert negotiate(ExplicitVRLittleEndian, [JPEGBaseline8Bit], rgb) == JPEGBaseline8Bit
    assert negotiate(ExplicitVRLittleEndian, [JPEGBaseline8Bit], rgb, allow_lossy=False) is None
    assert negotiate(ExplicitVRLittleEndian, [JPEGBaseline8Bit], ct) is None, "16-bit CT has no baseline form"
    assert negotiate(ExplicitVRLittleEndian, ["1.2.840.10008.1.2.4.94"], ct) is None, "JPIP is not produced"


def test_storage_policy_compresses_uncompressed_input_only() -> None:
    info = pixel_info(dcmread(sample(SMALL_CT)))
    policy = TranscodePolicy(store_as=JPEGLSLossless)
    assert policy.storage_syntax(ExplicitVRLittleEndian, info) == JPEGLSLossless
    assert policy.storage_syntax(JPEGLSLossless, info) is None
    assert policy.storage_syntax(JPEGBaseline8Bit, info) is None, "lossy input is not re-encoded"
    assert TranscodePolicy().storage_syntax(ExplicitVRLittleEndian, info) is None
    with pytest.raises(ValueError, match="store_as"):
        TranscodePolicy(store_as=JPEGBaseline8Bit)


# -- Secondary Capture ------------------------------------------------------------------------

PATIENT = {
    "PatientID": "P0001",
    "IssuerOfPatientID": "HIS1",
    "PatientName": "Zhang^San",
    "PatientBirthDate": "19800101",
    "PatientSex": "M",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1",
    "AccessionNumber": "ACC1",
}


def image_bytes(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(mode: str) -> Image.Image:
    y, x = np.mgrid[0:48, 0:64]
    if mode == "L":
        return Image.fromarray(((x * 3 + y * 2) % 256).astype(np.uint8), "L")
    rgb = np.stack([(x * 4) % 256, (y * 5) % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


@pytest.mark.parametrize(("mode", "photometric", "samples"), [("RGB", "RGB", 3), ("L", "MONOCHROME2", 1)])
def test_bmp_becomes_secondary_capture_with_exact_pixels(mode: str, photometric: str, samples: int) -> None:
    image = gradient(mode)
    ds = read(wrap_image(image_bytes(image, "BMP"), PATIENT))
    assert ds.SOPClassUID == SECONDARY_CAPTURE == ds.file_meta.MediaStorageSOPClassUID
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.Rows, ds.Columns) == (photometric, samples, 48, 64)
    assert np.array_equal(ds.pixel_array, np.asarray(image))
    for keyword, value in PATIENT.items():
        assert ds[keyword].value == value
    # the SC Image IOD's mandatory modules: General Series, SC Equipment, General Image, SOP Common
    assert (ds.Modality, ds.ConversionType, ds.InstanceNumber) == ("OT", "DI", 1)
    assert ds.SeriesInstanceUID and ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    type2 = ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "SeriesNumber", "PatientOrientation")
    assert all(keyword in ds for keyword in type2)


def test_baseline_jpeg_is_encapsulated_unchanged() -> None:
    image = gradient("RGB")
    jpeg = image_bytes(image, "JPEG", quality=85)
    ds = read(wrap_image(jpeg, PATIENT))
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert ds.PhotometricInterpretation == "YBR_FULL_422"  # Pillow's default is 4:2:0
    assert ds.LossyImageCompression == "01"
    [frame] = [b"".join(f) for f in generate_fragmented_frames(ds.PixelData)]
    assert frame.rstrip(b"\x00") == jpeg.rstrip(b"\x00")
    reference = np.asarray(Image.open(io.BytesIO(jpeg)))
    assert np.abs(ds.pixel_array.astype(int) - reference.astype(int)).max() <= 4


def test_progressive_jpeg_is_decoded_and_stored_uncompressed() -> None:
    image = gradient("L")
    jpeg = image_bytes(image, "JPEG", quality=90, progressive=True)
    ds = read(wrap_image(jpeg, {"PatientID": "P2"}))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(ds.pixel_array, np.asarray(Image.open(io.BytesIO(jpeg))))
    assert ds.StudyInstanceUID and ds.PatientName == ""


def test_wrap_image_refuses_non_images_and_unknown_keywords() -> None:
    with pytest.raises(DicomError, match="not an image"):
        wrap_image(b"%PDF-1.4 nope", PATIENT)
    with pytest.raises(ValueError, match="PatientIdentifier"):
        wrap_image(image_bytes(gradient("L"), "BMP"), {"PatientIdentifier": "x"})


def test_non_ascii_names_get_utf8_and_dcmtk_parses_the_file(tmp_path: Path) -> None:
    data = wrap_image(image_bytes(gradient("RGB"), "BMP"), {**PATIENT, "PatientName": "张^三"})
    ds = read(data)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "张^三"
    if dcmtk_available():
        (tmp_path / "sc.dcm").write_bytes(data)
        result = dcmtk("dcmdump", "+E", tmp_path / "sc.dcm")
        assert result.returncode == 0, result.stderr
        assert "SecondaryCaptureImageStorage" in result.stdout
