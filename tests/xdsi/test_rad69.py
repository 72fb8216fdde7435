"""RAD-69 Retrieve Imaging Document Set (profiles.xdsi.rad69) over the real archive.

The request names the instances a published KOS lists (RepositoryUniqueId =
its Retrieve Location UID); answers are checked against the XDS.b schema and
the MTOM parts decoded with pydicom.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGLSLossless,
)

from esb.exchange import Attachment
from esb.schemas import xml_schema
from profiles.dicom.archive import Archive
from profiles.dicom.transcode import TranscodePolicy
from profiles.xds import ebxml
from profiles.xds.ebxml import q
from profiles.xds.repository.provide import content_id
from profiles.xdsi import rad69
from profiles.xdsi.rad69 import ImagingDocumentSource
from tests.dicom_support import series
from tests.xdsi.conftest import CONFIG, REPOSITORY_UID
from tests.xdsi.support import files, read_dicom, study

JPIP = "1.2.840.10008.1.2.4.94"


@pytest.fixture
def source(archive: Archive) -> ImagingDocumentSource:
    return ImagingDocumentSource(archive, CONFIG)


def stored(archive: Archive, directory: Path, **options: Any) -> list[tuple[str, str, str]]:
    """(study, series, SOP instance) of every instance of a new stored study, in archive order."""
    return stored_with_bytes(archive, directory, **options)[0]


def stored_with_bytes(
    archive: Archive, directory: Path, **options: Any
) -> tuple[list[tuple[str, str, str]], dict[str, bytes]]:
    """Also the files' bytes by SOP Instance UID, read before the archive moved them."""
    study_uid = study(directory, **options)
    originals = {}
    for path in files(directory):
        originals[path.name.removesuffix(".dcm")] = path.read_bytes()
        archive.store(path)
    return _triples(archive, study_uid), originals


def _triples(archive: Archive, study_uid: str) -> list[tuple[str, str, str]]:
    ident = Dataset()
    ident.StudyInstanceUID = study_uid
    return [(i.study_uid, i.series_uid, i.sop_instance_uid) for i in archive.select("STUDY", ident)]


def retrieve(source: ImagingDocumentSource, triples: list[tuple[str, str, str]], *syntaxes: str) -> tuple[Any, Any]:
    return source.retrieve(rad69.request(triples, syntaxes, repository_unique_id=REPOSITORY_UID))


def status(answer: Any) -> str:
    return str(answer.find(q("rs", "RegistryResponse")).get("status")).rsplit(":", 1)[-1]


def errors(answer: Any) -> list[tuple[str, str]]:
    return [(e.get("errorCode"), e.get("location")) for e in answer.iter(q("rs", "RegistryError"))]


def delivered(answer: Any, parts: list[Attachment]) -> dict[str, bytes]:
    """{DocumentUniqueId: bytes of the part its xop:Include names}."""
    by_id = {p.content_id: p for p in parts}
    found = {}
    for node in answer.iterfind(q("xds", "DocumentResponse")):
        assert node.findtext(q("xds", "mimeType")) == "application/dicom"
        assert node.findtext(q("xds", "RepositoryUniqueId")) == REPOSITORY_UID
        assert node.findtext(q("xds", "HomeCommunityId")) == CONFIG.home_community_id
        include = node.find(f"{q('xds', 'Document')}/{q('xop', 'Include')}")
        found[str(node.findtext(q("xds", "DocumentUniqueId")))] = by_id[content_id(include.get("href"))].read()
    assert len(found) == len(parts)
    return found


def schema_valid(answer: Any, parts: list[Attachment]) -> bool:
    """The answer with each xop:Include replaced by its part's base64, against XDS.b_DocumentRepository.xsd."""
    decoded = copy.deepcopy(answer)
    by_id = {p.content_id: p for p in parts}
    for include in list(decoded.iter(q("xop", "Include"))):
        parent = include.getparent()
        parent.remove(include)
        parent.text = base64.b64encode(by_id[content_id(include.get("href"))].read()).decode("ascii")
    return bool(xml_schema("xds.b").validate(decoded))


def test_every_requested_instance_comes_back_as_stored(
    archive: Archive, source: ImagingDocumentSource, tmp_path: Path
) -> None:
    triples, originals = stored_with_bytes(archive, tmp_path / "study")
    answer, parts = retrieve(source, triples, ExplicitVRLittleEndian)
    assert (status(answer), errors(answer)) == ("Success", [])
    assert answer.tag == q("xds", "RetrieveDocumentSetResponse")
    assert schema_valid(answer, parts), xml_schema("xds.b").error_log
    got = delivered(answer, parts)
    assert list(got) == [uid for _, _, uid in triples]
    for uid, data in got.items():
        assert data == originals[uid]
    assert all(p.path is not None for p in parts), "stored files are streamed, not loaded"


def test_instances_are_transcoded_to_a_requested_syntax(
    archive: Archive, source: ImagingDocumentSource, tmp_path: Path
) -> None:
    triples, originals = stored_with_bytes(archive, tmp_path / "study", ct=2, mr=1)
    answer, parts = retrieve(source, triples, JPIP, JPEGLSLossless, ImplicitVRLittleEndian)
    assert status(answer) == "Success"
    for uid, data in delivered(answer, parts).items():
        ds = read_dicom(data)
        assert ds.file_meta.TransferSyntaxUID == JPEGLSLossless, "the first syntax this source can write"
        assert ds.SOPInstanceUID == uid
        assert np.array_equal(ds.pixel_array, read_dicom(originals[uid]).pixel_array)


def test_unknown_misplaced_and_foreign_instances_are_per_instance_errors(
    archive: Archive, source: ImagingDocumentSource, tmp_path: Path
) -> None:
    triples = stored(archive, tmp_path / "study", ct=2, mr=1)
    (study_uid, ct_series, first), (_, _, second), (_, mr_series, mr_uid) = triples
    request = rad69.request(
        [(study_uid, ct_series, first), (study_uid, ct_series, "1.2.3.999"), (study_uid, ct_series, mr_uid)],
        [ExplicitVRLittleEndian],
        repository_unique_id=REPOSITORY_UID,
    )
    foreign = copy.deepcopy(request.find(f".//{q('xds', 'DocumentRequest')}"))
    foreign.find(q("xds", "RepositoryUniqueId")).text = "1.2.3.4.5.6"
    foreign.find(q("xds", "DocumentUniqueId")).text = second
    request.find(f".//{rad69.xi('SeriesRequest')}").append(foreign)
    answer, parts = source.retrieve(request)
    assert status(answer) == "PartialSuccess"
    assert errors(answer) == [
        ("XDSDocumentUniqueIdError", "1.2.3.999"),
        ("XDSDocumentUniqueIdError", mr_uid),  # it exists, but not in the CT series named
        ("XDSUnknownRepositoryId", "1.2.3.4.5.6"),
    ]
    assert list(delivered(answer, parts)) == [first]
    assert schema_valid(answer, parts)


def test_a_syntax_no_instance_can_be_written_in_fails_them_all(
    archive: Archive, source: ImagingDocumentSource, tmp_path: Path
) -> None:
    triples = stored(archive, tmp_path / "study", ct=2, mr=0)
    answer, parts = retrieve(source, triples, JPEGBaseline8Bit)  # 16-bit CT has no baseline JPEG form
    assert (status(answer), parts) == ("Failure", [])
    assert errors(answer) == [(rad69.SYNTAX_NOT_POSSIBLE, uid) for _, _, uid in triples]
    answer, parts = retrieve(source, triples, JPIP)
    assert errors(answer) == [(rad69.SYNTAX_NOT_SUPPORTED, uid) for _, _, uid in triples]
    assert answer.find(q("xds", "DocumentResponse")) is None


def test_lossy_jpeg_only_when_the_policy_allows(archive: Archive, tmp_path: Path) -> None:
    [path] = series(tmp_path / "us", 1, source="US1_UNCR.dcm", modality="US")
    study_uid = dcmread(path, stop_before_pixels=True).StudyInstanceUID
    archive.store(path)
    triples = _triples(archive, study_uid)
    answer, parts = retrieve(ImagingDocumentSource(archive, CONFIG), triples, JPEGBaseline8Bit)
    assert status(answer) == "Success"
    [data] = delivered(answer, parts).values()
    ds = read_dicom(data)
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit and ds.LossyImageCompression == "01"
    strict = ImagingDocumentSource(archive, CONFIG, policy=TranscodePolicy(allow_lossy=False))
    answer, parts = retrieve(strict, triples, JPEGBaseline8Bit)
    assert errors(answer) == [(rad69.SYNTAX_NOT_POSSIBLE, triples[0][2])]


@pytest.mark.parametrize(
    ("damage", "text"),
    [
        (lambda r: r.remove(r.find(rad69.xi("TransferSyntaxUIDList"))), "TransferSyntaxUID"),
        (lambda r: r.remove(r.find(rad69.xi("StudyRequest"))), "no DocumentRequest"),
        (lambda r: r.find(rad69.xi("StudyRequest")).attrib.pop("studyInstanceUID"), "studyInstanceUID"),
        (lambda r: setattr(r, "tag", q("xds", "RetrieveDocumentSetRequest")), "expected iherad"),
    ],
    ids=["no-syntaxes", "no-study", "no-study-uid", "iti43-request"],
)
def test_malformed_requests_fail_with_a_repository_error(
    archive: Archive, source: ImagingDocumentSource, tmp_path: Path, damage: Any, text: str
) -> None:
    triples = stored(archive, tmp_path / "study", ct=1, mr=0)
    request = rad69.request(triples, [ExplicitVRLittleEndian], repository_unique_id=REPOSITORY_UID)
    damage(request)
    answer, parts = source.retrieve(request)
    assert (status(answer), parts) == ("Failure", [])
    [error] = answer.iter(q("rs", "RegistryError"))
    assert error.get("errorCode") == "XDSRepositoryError" and text in error.get("codeContext")
    assert answer.find(q("rs", "RegistryResponse")).get("status") == ebxml.FAILURE


def test_request_namespaces_are_the_xdsi_and_xds_ones(tmp_path: Path) -> None:
    request = rad69.request([("1.2", "1.2.3", "1.2.3.4")], [ExplicitVRLittleEndian], repository_unique_id="1.9")
    assert request.tag == "{urn:ihe:rad:xdsi-b:2009}RetrieveImagingDocumentSetRequest"
    study_node = request.find("{urn:ihe:rad:xdsi-b:2009}StudyRequest")
    series_node = study_node.find("{urn:ihe:rad:xdsi-b:2009}SeriesRequest")
    assert series_node.find("{urn:ihe:iti:xds-b:2007}DocumentRequest") is not None
    parsed = rad69.parse(request)
    assert parsed.instances == [rad69.InstanceRequest("1.2", "1.2.3", "1.9", "1.2.3.4")]
    assert parsed.transfer_syntaxes == [ExplicitVRLittleEndian]
