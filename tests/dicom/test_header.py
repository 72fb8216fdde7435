"""Reading headers without pixel data, spotting cut files in every encoding, and the header as DICOM JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.dataelem import DataElement

from esb.errors import DicomError
from profiles.dicom.header import header_json, is_storage_class, read_header
from tests.dicom_support import testdata as sample

#: one file per encoding the archive must take: explicit/implicit/big endian, deflate, JPEG 2000, RLE, JPEG-LS...
FILES = {
    "CT_small.dcm": "1.2.840.10008.1.2.1",
    "MR_small_bigendian.dcm": "1.2.840.10008.1.2.2",
    "image_dfl.dcm": "1.2.840.10008.1.2.1.99",
    "JPEG2000.dcm": "1.2.840.10008.1.2.4.91",
    "SC_rgb_rle.dcm": "1.2.840.10008.1.2.5",
    "MR_small_jpeg_ls_lossless.dcm": "1.2.840.10008.1.2.4.80",
    "JPEG-LL.dcm": "1.2.840.10008.1.2.4.70",
    "waveform_ecg.dcm": "1.2.840.10008.1.2.1",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_whole_files_are_read_and_cut_ones_refused(name: str, tmp_path: Path) -> None:
    data = sample(name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data)
    header = read_header(path)
    assert header.transfer_syntax == FILES[name]
    assert "PixelData" not in header.dataset  # never read, let alone decoded
    cuts = [len(data) // 2, 2000] if name == "image_dfl.dcm" else [len(data) - 1, len(data) // 2, 2000]
    for cut in cuts:  # (the deflate test file carries 8 stray bytes after its stream)
        path.write_bytes(data[:cut])
        with pytest.raises(DicomError) as caught:
            read_header(path)
        assert caught.value.status in (0xC000, 0xA900), cut


def test_storage_classes() -> None:
    assert is_storage_class("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    assert is_storage_class("1.2.840.10008.5.1.4.1.1.88.59")  # Key Object Selection Document
    assert not is_storage_class("1.2.840.10008.5.1.4.1.2.2.1")  # Study Root Q/R FIND
    assert not is_storage_class("1.2.3.4")


def test_header_json_leaves_pixel_and_bulk_data_out(tmp_path: Path) -> None:
    header = read_header(sample("CT_small.dcm"))
    document = json.loads(header_json(header.dataset))
    assert "7FE00010" not in document
    assert document["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}
    assert document["00080016"]["Value"] == ["1.2.840.10008.5.1.4.1.1.2"]
    assert all("InlineBinary" not in v or len(v["InlineBinary"]) <= 1400 for v in document.values())
    assert not any("BulkDataURI" in v for v in document.values())


def test_header_json_names_bulk_data_by_uri_when_asked() -> None:
    header = read_header(sample("waveform_ecg.dcm"))
    plain = json.loads(header_json(header.dataset))

    def uri(element: DataElement) -> str:
        return f"bulk/{int(element.tag):08X}"

    with_uris = json.loads(header_json(header.dataset, bulk_data_uri=uri))
    bulky = {k for k, v in with_uris.items() if "BulkDataURI" in v}
    nested = [v for v in with_uris.values() if v.get("vr") == "SQ" and "BulkDataURI" in json.dumps(v)]
    assert bulky or nested
    assert not any("BulkDataURI" in json.dumps(v) for v in plain.values())
