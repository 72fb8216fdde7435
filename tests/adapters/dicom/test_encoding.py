"""The fast DIMSE encoder writes exactly what pydicom writes, and leaves to pydicom what it does not write itself."""

from __future__ import annotations

import random
from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom import dimse_messages, dsutils, service_class

from adapters.dicom import encoding

FAMILIES = ["DOE", "SMITH", "WANG", "O'NEIL", "VAN DER BERG", "张", "MÜLLER"]
GIVEN = ["JOHN", "ANNA", "WEI", "", "MARIE-CLAIRE", "伟"]


def person(rnd: random.Random) -> str:
    name = f"{rnd.choice(FAMILIES)}^{rnd.choice(GIVEN)}"
    if rnd.random() < 0.2:
        name += f"={rnd.choice(FAMILIES)}^{rnd.choice(GIVEN)}"
    return name


def identifier(rnd: random.Random) -> Dataset:
    """A C-FIND response (or request) as the archive builds them: short text, UIDs, counts, empty keys."""
    ds = Dataset()
    ds.QueryRetrieveLevel = rnd.choice(["STUDY", "SERIES", "IMAGE", "PATIENT"])
    ds.PatientName = rnd.choice([person(rnd), "", None])
    ds.PatientID = rnd.choice(["P1", "PID0000012", "", "ID WITH SPACE "])
    ds.StudyInstanceUID = rnd.choice([generate_uid(), "1.2.3.4", "1.2.840.10008.12"])
    ds.StudyDate = rnd.choice(["20261129", "20260101-20261231", ""])
    ds.StudyTime = rnd.choice(["120000", "093015.123", ""])
    ds.AccessionNumber = rnd.choice(["ACC1", "A12", ""])
    ds.ModalitiesInStudy = rnd.choice([["CT", "PT"], "MR", "", ["CT"]])
    ds.NumberOfStudyRelatedInstances = rnd.choice([0, 1, 300, None])
    ds.NumberOfStudyRelatedSeries = rnd.choice(["2", 3])
    ds.StudyDescription = rnd.choice(["CT CHEST", "Thorax ÜBERSICHT", "", "胸部"])
    ds.RetrieveAETitle = rnd.choice(["ESB", "ARCHIVE1", ""])
    if rnd.random() < 0.5:
        ds.PatientWeight = rnd.choice(["72.5", 80, 0.25, "1e3"])
    if any(not str(e.value or "").isascii() for e in ds) or rnd.random() < 0.2:
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def command(rnd: random.Random) -> Dataset:
    ds = Dataset()
    ds.CommandGroupLength = rnd.randint(0, 300)
    ds.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.CommandField = rnd.choice([0x8001, 0x8020, 0x0030])
    ds.MessageIDBeingRespondedTo = rnd.randint(1, 65535)
    ds.CommandDataSetType = rnd.choice([0x0101, 0x0001])
    ds.Status = rnd.choice([0x0000, 0xFF00, 0xA700, 0xC000])
    if rnd.random() < 0.5:
        ds.AffectedSOPInstanceUID = generate_uid()
    if rnd.random() < 0.3:
        ds.ErrorComment = rnd.choice(["Out of resources", "x"])
    if rnd.random() < 0.3:
        ds.MoveDestination = rnd.choice(["STORESCP", "A"])
    return ds


@pytest.mark.parametrize("implicit", [True, False])
def test_fast_encoding_is_byte_for_byte_pydicoms(implicit: bool) -> None:
    rnd = random.Random(5)
    fast = encoding.make_encoder(dsutils.encode)
    checked = fallbacks = 0
    for _ in range(600):
        ds = identifier(rnd) if rnd.random() < 0.6 else command(rnd)
        expected = dsutils.encode(ds, implicit, True)
        assert fast(ds, implicit, True) == expected
        try:
            encoding.encode_fast(ds, implicit)
            checked += 1
        except encoding._Unsupported:
            fallbacks += 1
    assert checked > 500  # what is tested is the fast path, not the fallback


def unsupported_sets() -> list[tuple[str, Dataset]]:
    """Data sets the fast path must leave to pydicom."""
    sequence = Dataset()
    sequence.ReferencedSOPSequence = Sequence([Dataset()])
    sequence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID = "1.2.3"
    binary = Dataset()
    binary.PixelData = b"\x00\x01"
    binary["PixelData"].VR = "OB"
    tag = Dataset()
    tag.OffendingElement = [0x00100010]
    latin1 = Dataset()
    latin1.SpecificCharacterSet = "ISO_IR 100"
    latin1.PatientName = "MÜLLER^HANS"
    no_charset = Dataset()
    no_charset.PatientName = "MÜLLER^HANS"
    raw = dsutils.decode(BytesIO(dsutils.encode(command(random.Random(1)), True, True) or b""), True, True)
    return [("sequence", sequence), ("OB", binary), ("AT", tag), ("latin-1", latin1), ("no charset", no_charset),
            ("raw elements", raw)]  # fmt: skip


@pytest.mark.parametrize(("what", "ds"), unsupported_sets(), ids=[w for w, _ in unsupported_sets()])
def test_what_the_fast_path_does_not_write_goes_to_pydicom(what: str, ds: Dataset) -> None:
    with pytest.raises(encoding._Unsupported):
        encoding.encode_fast(ds, False)
    fast = encoding.make_encoder(dsutils.encode)
    for implicit in (True, False):
        assert fast(ds, implicit, True) == dsutils.encode(ds, implicit, True)


def test_big_endian_and_deflate_go_to_pydicom() -> None:
    calls: list[tuple[Any, ...]] = []

    def original(ds: Dataset, implicit: bool, little: bool, deflated: bool = False) -> bytes:
        calls.append((implicit, little, deflated))
        return b"pydicom"

    fast = encoding.make_encoder(original)
    ds = command(random.Random(2))
    assert fast(ds, False, False) == b"pydicom" and fast(ds, False, True, True) == b"pydicom"
    assert calls == [(False, False, False), (False, True, True)]
    assert fast(ds, True, True) != b"pydicom"


def test_install_patches_pynetdicom_once() -> None:
    encoding.install()
    first = getattr(service_class, "encode")  # noqa: B009 - not exported in pynetdicom's stubs
    encoding.install()
    assert getattr(service_class, "encode") is first  # noqa: B009
    assert getattr(dimse_messages, "encode").original is dsutils.encode  # noqa: B009
