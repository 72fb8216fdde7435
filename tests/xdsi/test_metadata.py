"""RAD-68 metadata (profiles.xdsi.metadata): the KOS DocumentEntry and the ITI-41 request, against the schemas."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from esb.schemas import xml_schema
from profiles.xds import ebxml
from profiles.xds.ebxml import q
from profiles.xdsi import metadata
from profiles.xdsi.config import XdsiConfig
from tests.xdsi.support import slot_values

MASTER = "P1234^^^&1.2.156.112.9999.1.1&ISO"
SOURCE = "P0001^^^&1.2.156.112.9999.7.1&ISO"
NOW = dt.datetime(2026, 11, 29, 9, 30, 15, tzinfo=dt.UTC)


def kos_like(**values: Any) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.99"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.PatientName = "Zhang^San^^Dr^Jr=张^三"
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "M"
    ds.AccessionNumber = "ACC1"
    ds.StudyDate, ds.StudyTime = "20261128", "143000.123"
    ds.StudyDescription = "CT chest"
    for key, value in values.items():
        setattr(ds, key, value)
    return ds


def classifications(entry: Any) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for node in entry.iterfind(q("rim", "Classification")):
        scheme = node.get("classificationScheme")
        found.setdefault(scheme, []).append((node.get("nodeRepresentation"), slot_values(node, "codingScheme")[0]))
    return found


def externals(node: Any) -> dict[str, str]:
    return {e.get("identificationScheme"): e.get("value") for e in node.iterfind(q("rim", "ExternalIdentifier"))}


def submission(**options: Any) -> metadata.Submission:
    return metadata.provide_request(
        kos_like(),
        b"DICM-bytes",
        patient_id=MASTER,
        source_patient_id=SOURCE,
        modalities=["CT", "MR", "SR", "CT"],
        config=XdsiConfig(),
        now=NOW,
        **options,
    )


def without_includes(request: Any) -> Any:
    checked = copy.deepcopy(request)
    for include in list(checked.iter(q("xop", "Include"))):
        include.getparent().remove(include)
    return checked


def test_the_request_follows_the_xds_and_ebrs_schemas() -> None:
    built = submission()
    assert xml_schema("xds.b").validate(without_includes(built.request)), xml_schema("xds.b").error_log
    submit = built.request.find(q("lcm", "SubmitObjectsRequest"))
    assert xml_schema("ebrs-lcm").validate(submit), xml_schema("ebrs-lcm").error_log
    [include] = built.request.iter(q("xop", "Include"))
    assert include.get("href") == f"cid:{built.attachment.content_id}"
    assert built.attachment.content_type == "application/dicom" and built.attachment.read() == b"DICM-bytes"
    assert built.request.find(q("xds", "Document")).get("id") == built.entry_uuid


def test_document_entry_carries_the_xds_i_attributes() -> None:
    built = submission()
    [entry] = built.request.iter(q("rim", "ExtrinsicObject"))
    assert entry.get("id") == built.entry_uuid and entry.get("mimeType") == "application/dicom"
    assert entry.get("objectType") == ebxml.STABLE_DOCUMENT
    codes = classifications(entry)
    assert codes[ebxml.DE_FORMAT_CODE] == [("1.2.840.10008.5.1.4.1.1.88.59", "1.2.840.10008.2.6.1")]
    assert codes[ebxml.DE_CLASS_CODE] == [("18748-4", "2.16.840.1.113883.6.1")]
    assert codes[ebxml.DE_TYPE_CODE] == [("18748-4", "2.16.840.1.113883.6.1")]
    assert codes[ebxml.DE_EVENT_CODE] == [("CT", "1.2.840.10008.2.16.4"), ("MR", "1.2.840.10008.2.16.4")]
    assert codes[ebxml.DE_CONFIDENTIALITY_CODE] == [("N", "2.16.840.1.113883.5.25")]
    assert codes[ebxml.DE_HEALTHCARE_FACILITY_TYPE_CODE] == [("22232009", "2.16.840.1.113883.6.96")]
    assert codes[ebxml.DE_PRACTICE_SETTING_CODE] == [("394914008", "2.16.840.1.113883.6.96")]
    assert externals(entry) == {ebxml.DE_PATIENT_ID: MASTER, ebxml.DE_UNIQUE_ID: "1.2.826.0.1.3680043.8.498.99"}
    assert slot_values(entry, "creationTime") == ["20261129093015"]
    assert slot_values(entry, "serviceStartTime") == ["20261128143000"]
    assert slot_values(entry, "sourcePatientId") == [SOURCE]
    assert slot_values(entry, "sourcePatientInfo") == [
        f"PID-3|{SOURCE}",
        "PID-5|Zhang^San^^Jr^Dr",  # HL7 XPN: suffix before prefix
        "PID-5|张^三",
        "PID-7|19800101",
        "PID-8|M",
    ]
    assert slot_values(entry, "urn:ihe:iti:xds:2013:referenceIdList") == [
        "ACC1^^^^urn:ihe:iti:xds:2013:accession",
        "1.2.826.0.1.3680043.8.498.1^^^^urn:ihe:iti:xds:2016:studyInstanceUID",
    ]
    for absent in ("hash", "size", "repositoryUniqueId"):  # the repository's to add
        assert slot_values(entry, absent) == []
    assert entry.find(f"{q('rim', 'Name')}/{q('rim', 'LocalizedString')}").get("value") == "Imaging study: CT chest"


def test_submission_set_and_associations() -> None:
    built = submission()
    [package] = built.request.iter(q("rim", "RegistryPackage"))
    ids = externals(package)
    assert ids[ebxml.SS_PATIENT_ID] == MASTER and ids[ebxml.SS_SOURCE_ID] == XdsiConfig().source_id
    assert slot_values(package, "submissionTime") == ["20261129093015"]
    kinds = [(a.get("associationType"), a.get("sourceObject"), a.get("targetObject")) for a in _associations(built)]
    assert kinds == [(ebxml.HAS_MEMBER, package.get("id"), built.entry_uuid)]
    replacing = submission(replaces="urn:uuid:0b8e2a10-0000-4000-8000-000000000001")
    links = [(a.get("associationType"), a.get("sourceObject"), a.get("targetObject")) for a in _associations(replacing)]
    assert links[-1] == (ebxml.RPLC, replacing.entry_uuid, "urn:uuid:0b8e2a10-0000-4000-8000-000000000001")


def _associations(built: metadata.Submission) -> list[Any]:
    return list(built.request.iter(q("rim", "Association")))


def test_reference_ids_take_the_issuer_of_accession_number() -> None:
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = "RIS"
    issuer.UniversalEntityID = "1.2.3.4"
    issuer.UniversalEntityIDType = "ISO"
    study = kos_like(IssuerOfAccessionNumberSequence=DicomSequence([issuer]))
    assert metadata.reference_ids(study)[0] == "ACC1^^^RIS&1.2.3.4&ISO^urn:ihe:iti:xds:2013:accession"
    assert metadata.reference_ids(kos_like(), "1.9.9")[0] == "ACC1^^^&1.9.9&ISO^urn:ihe:iti:xds:2013:accession"
    assert metadata.reference_ids(kos_like(AccessionNumber="")) == [
        "1.2.826.0.1.3680043.8.498.1^^^^urn:ihe:iti:xds:2016:studyInstanceUID"
    ]


def test_event_codes_are_acquisition_modalities_once() -> None:
    assert metadata.event_codes(["ct", "KO", "PR", "US", "CT", "", "SR"]) == [
        ("CT", "1.2.840.10008.2.16.4", "Computed Tomography"),
        ("US", "1.2.840.10008.2.16.4", "Ultrasound"),
    ]


def test_a_study_without_date_has_no_service_start_time() -> None:
    entry = metadata.document_entry(
        kos_like(StudyDate="", StudyTime=""),
        "urn:uuid:0b8e2a10-0000-4000-8000-000000000002",
        patient_id=MASTER,
        source_patient_id=SOURCE,
        modalities=[],
        config=XdsiConfig(),
        now=NOW,
    )
    assert slot_values(entry, "serviceStartTime") == []
    assert ebxml.DE_EVENT_CODE not in classifications(entry)
