"""The structure check of received data sets: whole ones pass, cut or garbled ones are refused, nothing decoded."""

from __future__ import annotations

import struct

import pytest
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from adapters.dicom.dataset import CorruptDataSet, check_structure, plain_bytes, read_header
from tests import dicom_support
from tests.adapters.dicom.support import dataset_bytes

SOURCES = [
    "CT_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",
    "rtplan.dcm",  # nested sequences
    "JPEG2000.dcm",  # encapsulated fragments
    "MR_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "explicit_VR-UN.dcm",
    "gdcm-US-ALOKA-16.dcm",
]


def _encoded(name: str) -> tuple[bytes, UID]:
    path = dicom_support.testdata(name)
    return dataset_bytes(path), UID(str(read_file_meta_info(path).TransferSyntaxUID))


@pytest.mark.parametrize("name", SOURCES)
def test_whole_data_sets_pass_and_cut_ones_do_not(name: str) -> None:
    data, syntax = _encoded(name)
    plain = plain_bytes(data, syntax)
    check_structure(plain, syntax)
    assert read_header(plain, syntax).SOPInstanceUID
    # (image_dfl.dcm has 8 bytes after its deflate stream: cutting those loses nothing)
    tail = (20, 40) if syntax == DeflatedExplicitVRLittleEndian else (1, 7)
    for cut in (len(data) - tail[0], len(data) - tail[1], len(data) // 2, 13):
        with pytest.raises(CorruptDataSet):
            check_structure(plain_bytes(data[:cut], syntax), syntax)


def test_garbage_is_refused_in_any_syntax() -> None:
    for junk in (bytes(range(256)) * 20, b"\x00" * 512, b"\xff" * 300):
        for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
            with pytest.raises(CorruptDataSet):
                check_structure(plain_bytes(junk, syntax), syntax)
    with pytest.raises(CorruptDataSet, match="empty"):
        check_structure(b"", ExplicitVRLittleEndian)


def test_a_broken_fragment_and_a_missing_item_delimiter_are_found() -> None:
    data, syntax = _encoded("JPEG2000.dcm")
    pixel = data.index(struct.pack("<HH", 0x7FE0, 0x0010) + b"OB")
    fragment = pixel + 12 + 8  # after the basic offset table item header (empty table)
    assert struct.unpack_from("<HHL", data, fragment)[:2] == (0xFFFE, 0xE000)
    longer = data[: fragment + 4] + struct.pack("<L", 10**7) + data[fragment + 8 :]
    with pytest.raises(CorruptDataSet, match="broken pixel data fragment"):
        check_structure(longer, syntax)
    without_end = data[: len(data) - 8]  # the sequence delimiter of the fragments, gone
    with pytest.raises(CorruptDataSet):
        check_structure(without_end, syntax)
