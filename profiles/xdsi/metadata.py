"""RAD-68 metadata: the KOS's DocumentEntry and the ITI-41 request that carries it (RAD TF-3 4.68.4.1.2.4).

The DocumentEntry is a stable ``application/dicom`` entry whose uniqueId is the
KOS SOP Instance UID and whose formatCode is the KOS SOP Class UID (coding
scheme: the DICOM UID registry). patientId is the EMPI master ID (the affinity
domain's); sourcePatientId/sourcePatientInfo are the study's own identity.
eventCodeList carries the study's acquisition modalities (DCM codes) and
referenceIdList its accession number and Study Instance UID as CXi values
(``urn:ihe:iti:xds:2013:accession``, ``urn:ihe:iti:xds:2016:studyInstanceUID``),
so a consumer finds the manifest of an order or a study with
FindDocumentsByReferenceId. hash, size and repositoryUniqueId are the
repository's to add. A replacement carries an RPLC association to the entry it
replaces (ITI TF-3 4.2.2.2.2), which the registry then deprecates.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import PersonName

from esb.exchange import Attachment
from profiles.xds import ebxml
from profiles.xds.ebxml import LCM, RIM, XDS, XOP, q
from profiles.xdsi.config import DCM, FORMAT_CODE, Code, XdsiConfig

MIME_TYPE = "application/dicom"
ACCESSION = "urn:ihe:iti:xds:2013:accession"
STUDY_INSTANCE_UID = "urn:ihe:iti:xds:2016:studyInstanceUID"
#: modalities that are not acquisitions (CID 29 leaves them out): no event code
DERIVED_MODALITIES = frozenset({"KO", "PR", "SR", "DOC", "REG", "SEG", "FID", "RWV", "PLAN", "OT", "AU"})
#: CID 29 meanings of the common acquisition modalities
MODALITY_MEANINGS = {
    "CR": "Computed Radiography",
    "CT": "Computed Tomography",
    "DX": "Digital Radiography",
    "ES": "Endoscopy",
    "IO": "Intra-oral Radiography",
    "MG": "Mammography",
    "MR": "Magnetic Resonance",
    "NM": "Nuclear Medicine",
    "OP": "Ophthalmic Photography",
    "PT": "Positron emission tomography",
    "PX": "Panoramic X-Ray",
    "RF": "Radio Fluoroscopy",
    "RG": "Radiographic imaging",
    "US": "Ultrasound",
    "XA": "X-Ray Angiography",
    "XC": "External-camera Photography",
    "ECG": "Electrocardiography",
}


@dataclass(frozen=True)
class Submission:
    """An ITI-41 request ready for ``Repository.provide(request, [attachment])``."""

    request: Any
    attachment: Attachment
    entry_uuid: str
    unique_id: str


def new_uuid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def dtm(moment: dt.datetime) -> str:
    """XDS DTM: UTC, to the second."""
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")


def _slot(name: str, *values: str) -> Any:
    node = etree.Element(q("rim", "Slot"), name=name)
    value_list = etree.SubElement(node, q("rim", "ValueList"))
    for value in values:
        etree.SubElement(value_list, q("rim", "Value")).text = value
    return node


def _name(tag: str, text: str) -> Any:
    node = etree.Element(q("rim", tag))
    etree.SubElement(node, q("rim", "LocalizedString"), value=text)
    return node


def _classification(scheme: str, classified: str, code: Code) -> Any:
    node = etree.Element(q("rim", "Classification"), id=new_uuid(), classificationScheme=scheme)
    node.set("classifiedObject", classified)
    node.set("nodeRepresentation", code[0])
    node.append(_slot("codingScheme", code[1]))
    node.append(_name("Name", code[2]))
    return node


def _external(scheme: str, registry_object: str, value: str, label: str) -> Any:
    node = etree.Element(q("rim", "ExternalIdentifier"), id=new_uuid(), registryObject=registry_object)
    node.set("identificationScheme", scheme)
    node.set("value", value)
    node.append(_name("Name", label))
    return node


def _association(kind: str, source: str, target: str, status: str | None = None) -> Any:
    node = etree.Element(q("rim", "Association"), id=new_uuid(), associationType=kind)
    node.set("sourceObject", source)
    node.set("targetObject", target)
    if status is not None:
        node.append(_slot("SubmissionSetStatus", status))
    return node


def event_codes(modalities: Sequence[str]) -> list[Code]:
    """eventCodeList: each acquisition modality once, as a DCM code (CID 29)."""
    seen: list[str] = []
    for modality in modalities:
        value = modality.strip().upper()
        if value and value not in DERIVED_MODALITIES and value not in seen:
            seen.append(value)
    return [(m, DCM, MODALITY_MEANINGS.get(m, m)) for m in seen]


def _accession_issuer(study: Dataset, default: str) -> str:
    """CXi.4 of the accession number: Issuer of Accession Number (0008,0051), else the configured OID."""
    for item in study.get("IssuerOfAccessionNumberSequence", []):
        universal = str(item.get("UniversalEntityID", ""))
        if universal:
            return f"{item.get('LocalNamespaceEntityID', '')}&{universal}&{item.get('UniversalEntityIDType', 'ISO')}"
        if item.get("LocalNamespaceEntityID"):
            return str(item.LocalNamespaceEntityID)
    return f"&{default}&ISO" if default else ""


def reference_ids(study: Dataset, accession_issuer: str = "") -> list[str]:
    """referenceIdList values (CXi): the accession number, when there is one, and the Study Instance UID."""
    values = []
    accession = str(study.get("AccessionNumber", "")).strip()
    if accession:
        values.append(f"{accession}^^^{_accession_issuer(study, accession_issuer)}^{ACCESSION}")
    values.append(f"{study.StudyInstanceUID}^^^^{STUDY_INSTANCE_UID}")
    return values


def _xpn(name: Any) -> list[str]:
    """HL7 XPN of a DICOM PN, one per component group (DICOM's prefix/suffix order is HL7's suffix/prefix)."""
    person = name if isinstance(name, PersonName) else PersonName(str(name))
    values = []
    for group in str(person).split("="):
        parts = (group.split("^") + [""] * 5)[:5]
        family, given, middle, prefix, suffix = parts
        text = "^".join([family, given, middle, suffix, prefix]).rstrip("^")
        if text:
            values.append(text)
    return values


def source_patient_info(study: Dataset, source_patient_id: str) -> list[str]:
    info = [f"PID-3|{source_patient_id}"]
    info.extend(f"PID-5|{xpn}" for xpn in _xpn(study.get("PatientName", "")))
    if study.get("PatientBirthDate"):
        info.append(f"PID-7|{study.PatientBirthDate}")
    if study.get("PatientSex"):
        info.append(f"PID-8|{study.PatientSex}")
    return info


def _service_time(study: Dataset) -> str:
    """serviceStartTime from Study Date/Time (DICOM local time: taken as given, to the second)."""
    date = str(study.get("StudyDate", "")).strip()
    if len(date) != 8 or not date.isdigit():
        return ""
    time = "".join(c for c in str(study.get("StudyTime", "")).split(".")[0] if c.isdigit())
    return date + time[:6] if len(time) in (2, 4, 6) else date


def document_entry(
    kos: Dataset,
    entry_uuid: str,
    *,
    patient_id: str,
    source_patient_id: str,
    modalities: Sequence[str],
    config: XdsiConfig,
    now: dt.datetime,
) -> Any:
    """``rim:ExtrinsicObject`` of the manifest (children in ebRIM order: Slot, Name, Classification, ExternalId)."""
    node = etree.Element(q("rim", "ExtrinsicObject"), id=entry_uuid, mimeType=MIME_TYPE)
    node.set("objectType", ebxml.STABLE_DOCUMENT)
    node.append(_slot("creationTime", dtm(now)))
    node.append(_slot("languageCode", config.language_code))
    start = _service_time(kos)
    if start:
        node.append(_slot("serviceStartTime", start))
    node.append(_slot("sourcePatientId", source_patient_id))
    node.append(_slot("sourcePatientInfo", *source_patient_info(kos, source_patient_id)))
    node.append(_slot("urn:ihe:iti:xds:2013:referenceIdList", *reference_ids(kos, config.accession_issuer)))
    description = str(kos.get("StudyDescription", "")).strip()
    node.append(_name("Name", f"Imaging study: {description}" if description else "Imaging study manifest"))
    coded: list[tuple[str, Code]] = [
        (ebxml.DE_CLASS_CODE, config.class_code),
        (ebxml.DE_CONFIDENTIALITY_CODE, config.confidentiality_code),
        *((ebxml.DE_EVENT_CODE, c) for c in event_codes(modalities)),
        (ebxml.DE_FORMAT_CODE, FORMAT_CODE),
        (ebxml.DE_HEALTHCARE_FACILITY_TYPE_CODE, config.healthcare_facility_type_code),
        (ebxml.DE_PRACTICE_SETTING_CODE, config.practice_setting_code),
        (ebxml.DE_TYPE_CODE, config.type_code),
    ]
    for scheme, value in coded:
        node.append(_classification(scheme, entry_uuid, value))
    node.append(_external(ebxml.DE_PATIENT_ID, entry_uuid, patient_id, "XDSDocumentEntry.patientId"))
    node.append(_external(ebxml.DE_UNIQUE_ID, entry_uuid, str(kos.SOPInstanceUID), "XDSDocumentEntry.uniqueId"))
    return node


def submission_set(set_uuid: str, *, patient_id: str, config: XdsiConfig, now: dt.datetime) -> Any:
    node = etree.Element(q("rim", "RegistryPackage"), id=set_uuid)
    node.append(_slot("submissionTime", dtm(now)))
    node.append(_name("Name", "XDS-I.b imaging manifest"))
    node.append(_classification(ebxml.SS_CONTENT_TYPE_CODE, set_uuid, config.content_type_code))
    classification = etree.SubElement(node, q("rim", "Classification"), id=new_uuid(), classifiedObject=set_uuid)
    classification.set("classificationNode", ebxml.SUBMISSION_SET_NODE)
    node.append(_external(ebxml.SS_UNIQUE_ID, set_uuid, generate_uid(), "XDSSubmissionSet.uniqueId"))
    node.append(_external(ebxml.SS_SOURCE_ID, set_uuid, config.source_id, "XDSSubmissionSet.sourceId"))
    node.append(_external(ebxml.SS_PATIENT_ID, set_uuid, patient_id, "XDSSubmissionSet.patientId"))
    return node


def provide_request(
    kos: Dataset,
    data: bytes,
    *,
    patient_id: str,
    source_patient_id: str,
    modalities: Sequence[str],
    config: XdsiConfig,
    replaces: str | None = None,
    now: dt.datetime | None = None,
) -> Submission:
    """``xds:ProvideAndRegisterDocumentSetRequest`` with the KOS as an MTOM part (RAD-68)."""
    now = now or dt.datetime.now(dt.UTC)
    entry_uuid, set_uuid = new_uuid(), new_uuid()
    root = etree.Element(q("xds", "ProvideAndRegisterDocumentSetRequest"), nsmap={"xds": XDS, "xop": XOP})
    submit = etree.SubElement(root, q("lcm", "SubmitObjectsRequest"), nsmap={"lcm": LCM, "rim": RIM})
    objects = etree.SubElement(submit, q("rim", "RegistryObjectList"))
    objects.append(submission_set(set_uuid, patient_id=patient_id, config=config, now=now))
    objects.append(
        document_entry(
            kos,
            entry_uuid,
            patient_id=patient_id,
            source_patient_id=source_patient_id,
            modalities=modalities,
            config=config,
            now=now,
        )
    )
    objects.append(_association(ebxml.HAS_MEMBER, set_uuid, entry_uuid, status="Original"))
    if replaces:
        objects.append(_association(ebxml.RPLC, entry_uuid, replaces))
    attachment = Attachment(f"{uuid.uuid4().hex}@xdsi.esb", MIME_TYPE, data=data)
    document = etree.SubElement(root, q("xds", "Document"), id=entry_uuid)
    etree.SubElement(document, q("xop", "Include"), href=f"cid:{attachment.content_id}")
    return Submission(root, attachment, entry_uuid, str(kos.SOPInstanceUID))
