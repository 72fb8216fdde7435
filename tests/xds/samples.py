"""Test-data builder: VALID ITI-42 metadata (lcm:SubmitObjectsRequest) and EMPI master patients.

Everything built here validates against ``esb.schemas.xml_schema("ebrs-lcm")``
and carries every attribute ITI TF-3 4.2.3 requires of an XDS.b Document Source,
so a test changes only what it is about::

    pid = add_patient(engine)                                  # an active EMPI master ID (CX)
    request = submission(pid)                                  # SS + 1 DocumentEntry, symbolic ids
    request = submission(pid, documents=2, folder=True)        # + a Folder holding both documents
    request = submission(pid, associations=[association(RPLC, "Document01", old_uuid)])
    doc = document_entry(pid, id="Document01", class_code=("X", "1.2.3", "X"))

Ids are symbolic by default (``SubmissionSet01``, ``Document01``, ``Document02``,
``Folder01``; associations ``Association01``...), so the registry assigns UUIDs;
``uuids=True`` makes every object id a fresh ``urn:uuid:``. uniqueIds are fresh
``2.25.<uuid>`` OIDs unless given. A code is a ``(code, codingScheme, display)`` tuple.
This module's API is used by several test packages: extend it, never break it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from lxml import etree

from profiles.empi.config import EmpiConfig
from profiles.empi.schema import persons
from profiles.xds import ebxml
from profiles.xds.ebxml import LCM, RIM, q

#: the EMPI master domain of the shipped config: XDS patient IDs are in it
MASTER_OID = EmpiConfig().master_domain.universal_id

Code = tuple[str, str, str]

CLASS_CODE: Code = ("11488-4", "2.16.840.1.113883.6.1", "Consultation note")
TYPE_CODE: Code = ("34108-1", "2.16.840.1.113883.6.1", "Outpatient Note")
FORMAT_CODE: Code = ("urn:ihe:rad:PDF", "1.3.6.1.4.1.19376.1.2.3", "Radiology PDF")
CONFIDENTIALITY_CODE: Code = ("N", "2.16.840.1.113883.5.25", "Normal")
HEALTHCARE_FACILITY_TYPE_CODE: Code = ("22232009", "2.16.840.1.113883.6.96", "Hospital")
PRACTICE_SETTING_CODE: Code = ("394914008", "2.16.840.1.113883.6.96", "Radiology")
EVENT_CODE: Code = ("CT", "1.2.840.10008.2.16.4", "Computed Tomography")
CONTENT_TYPE_CODE: Code = ("18748-4", "2.16.840.1.113883.6.1", "Diagnostic imaging study")
FOLDER_CODE: Code = ("18748-4", "2.16.840.1.113883.6.1", "Diagnostic imaging study")
SOURCE_ID = "1.2.156.112.9999.5.1"
REPOSITORY_UNIQUE_ID = "1.2.156.112.9999.3.1"
CONTENT = b"<report>hello</report>"

_counter = itertools.count(1)


# -- patients ------------------------------------------------------------------------


def patient_cx(person_id: str, master_oid: str = MASTER_OID) -> str:
    """The XDS patient ID (CX) of an EMPI person."""
    return f"{person_id}^^^&{master_oid}&ISO"


def add_patient(
    bind: sa.Engine | sa.Connection,
    person_id: str | None = None,
    *,
    status: str = "active",
    merged_into: str | None = None,
    master_oid: str = MASTER_OID,
) -> str:
    """Insert an ``esb_empi_persons`` row (active by default) and return its CX patient ID.

    ``status="merged", merged_into=<person id>`` makes a merged (refused) ID.
    """
    person_id = person_id or uuid.uuid4().hex[:16]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row: dict[str, Any] = {
        "id": person_id,
        "status": status,
        "merged_into": merged_into,
        "golden": {},
        "created_at": now,
        "updated_at": now,
    }
    if isinstance(bind, sa.Connection):
        bind.execute(sa.insert(persons).values(**row))
    else:
        with bind.begin() as conn:
            conn.execute(sa.insert(persons).values(**row))
    return patient_cx(person_id, master_oid)


# -- small pieces --------------------------------------------------------------------


def new_uuid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def new_oid() -> str:
    """A fresh, globally unique OID (``2.25.<uuid as integer>``) for a uniqueId."""
    return f"2.25.{uuid.uuid4().int}"


def sha1(content: bytes) -> str:
    return hashlib.sha1(content).hexdigest()


def _symbol(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


def slot(name: str, *values: str) -> Any:
    """``rim:Slot`` with a ValueList."""
    node = etree.Element(q("rim", "Slot"), nsmap={"rim": RIM})
    node.set("name", name)
    value_list = etree.SubElement(node, q("rim", "ValueList"))
    for value in values:
        etree.SubElement(value_list, q("rim", "Value")).text = value
    return node


def _localized(tag: str, text: str) -> Any:
    node = etree.Element(q("rim", tag), nsmap={"rim": RIM})
    etree.SubElement(node, q("rim", "LocalizedString")).set("value", text)
    return node


def name(text: str) -> Any:
    """``rim:Name`` (the title)."""
    return _localized("Name", text)


def description(text: str) -> Any:
    """``rim:Description`` (the comments)."""
    return _localized("Description", text)


def classification(scheme: str, classified: str, code: Code, *, id: str | None = None) -> Any:
    """A coded classification (classCode, typeCode...): nodeRepresentation, codingScheme slot, Name."""
    node = etree.Element(q("rim", "Classification"), nsmap={"rim": RIM})
    node.set("id", id or _symbol("cl"))
    node.set("classificationScheme", scheme)
    node.set("classifiedObject", classified)
    node.set("nodeRepresentation", code[0])
    node.append(slot("codingScheme", code[1]))
    node.append(name(code[2]))
    return node


def author(scheme: str, classified: str, person: str, *, id: str | None = None, **slots: Sequence[str]) -> Any:
    """An author classification: ``authorPerson`` and optional authorInstitution/Role/Specialty/Telecommunication."""
    node = etree.Element(q("rim", "Classification"), nsmap={"rim": RIM})
    node.set("id", id or _symbol("cl"))
    node.set("classificationScheme", scheme)
    node.set("classifiedObject", classified)
    node.set("nodeRepresentation", "")
    node.append(slot("authorPerson", person))
    for key, values in slots.items():
        node.append(slot(key, *values))
    return node


def node_classification(node_uuid: str, classified: str, *, id: str | None = None) -> Any:
    """The classification that makes a RegistryPackage a SubmissionSet or a Folder."""
    node = etree.Element(q("rim", "Classification"), nsmap={"rim": RIM})
    node.set("id", id or _symbol("cl"))
    node.set("classifiedObject", classified)
    node.set("classificationNode", node_uuid)
    return node


def external_identifier(scheme: str, registry_object: str, value: str, label: str, *, id: str | None = None) -> Any:
    node = etree.Element(q("rim", "ExternalIdentifier"), nsmap={"rim": RIM})
    node.set("id", id or _symbol("ei"))
    node.set("registryObject", registry_object)
    node.set("identificationScheme", scheme)
    node.set("value", value)
    node.append(name(label))
    return node


# -- objects -------------------------------------------------------------------------


def document_entry(
    patient_id: str,
    *,
    id: str = "Document01",
    unique_id: str | None = None,
    on_demand: bool = False,
    content: bytes = CONTENT,
    hash: str | None = None,
    size: int | str | None = None,
    mime_type: str = "text/xml",
    repository_unique_id: str = REPOSITORY_UNIQUE_ID,
    creation_time: str = "20240102030405",
    service_start_time: str | None = "200401020304",
    service_stop_time: str | None = "20040102",
    language_code: str = "en-US",
    source_patient_id: str = "H100^^^&1.2.3.1&ISO",
    title: str | None = "Report",
    comments: str | None = None,
    author_person: str | None = "^Welby^Marcus^^^Dr^MD",
    class_code: Code = CLASS_CODE,
    type_code: Code = TYPE_CODE,
    format_code: Code = FORMAT_CODE,
    confidentiality_codes: Iterable[Code] = (CONFIDENTIALITY_CODE,),
    healthcare_facility_type_code: Code = HEALTHCARE_FACILITY_TYPE_CODE,
    practice_setting_code: Code = PRACTICE_SETTING_CODE,
    event_codes: Iterable[Code] = (EVENT_CODE,),
    reference_ids: Iterable[str] = (),
    extra_slots: dict[str, Sequence[str]] | None = None,
    omit: Iterable[str] = (),
) -> Any:
    """``rim:ExtrinsicObject`` of a DocumentEntry (stable, or on-demand without hash/size/times).

    ``omit`` drops parts by name to build invalid metadata: slot names
    (``creationTime``, ``hash``...), ``classCode``, ``typeCode``, ``formatCode``,
    ``confidentialityCode``, ``healthcareFacilityTypeCode``, ``practiceSettingCode``,
    ``patientId``, ``uniqueId``, ``author``, ``mimeType`` (the attribute).
    """
    skip = set(omit)
    node = etree.Element(q("rim", "ExtrinsicObject"), nsmap={"rim": RIM})
    node.set("id", id)
    if "mimeType" not in skip:
        node.set("mimeType", mime_type)
    node.set("objectType", ebxml.ON_DEMAND_DOCUMENT if on_demand else ebxml.STABLE_DOCUMENT)
    slots: list[tuple[str, Sequence[str]]] = []
    if not on_demand:
        slots.append(("creationTime", [creation_time]))
        slots.append(("hash", [hash if hash is not None else sha1(content)]))
    slots.append(("languageCode", [language_code]))
    slots.append(("repositoryUniqueId", [repository_unique_id]))
    if not on_demand and service_start_time:
        slots.append(("serviceStartTime", [service_start_time]))
    if not on_demand and service_stop_time:
        slots.append(("serviceStopTime", [service_stop_time]))
    if not on_demand:
        slots.append(("size", [str(size if size is not None else len(content))]))
    slots.append(("sourcePatientId", [source_patient_id]))
    slots.append(("sourcePatientInfo", ["PID-3|" + source_patient_id, "PID-8|M"]))
    if reference_ids:
        slots.append(("urn:ihe:iti:xds:2013:referenceIdList", list(reference_ids)))
    slots.extend((extra_slots or {}).items())
    for key, values in slots:
        if key not in skip:
            node.append(slot(key, *values))
    if title is not None:
        node.append(name(title))
    if comments is not None:
        node.append(description(comments))
    if author_person is not None and "author" not in skip:
        node.append(author(ebxml.DE_AUTHOR, id, author_person, authorInstitution=["Some Hospital^^^^^^^^^1.2.3.9"]))
    coded: list[tuple[str, str, Code]] = [
        ("classCode", ebxml.DE_CLASS_CODE, class_code),
        *(("confidentialityCode", ebxml.DE_CONFIDENTIALITY_CODE, c) for c in confidentiality_codes),
        *(("eventCodeList", ebxml.DE_EVENT_CODE, c) for c in event_codes),
        ("formatCode", ebxml.DE_FORMAT_CODE, format_code),
        ("healthcareFacilityTypeCode", ebxml.DE_HEALTHCARE_FACILITY_TYPE_CODE, healthcare_facility_type_code),
        ("practiceSettingCode", ebxml.DE_PRACTICE_SETTING_CODE, practice_setting_code),
        ("typeCode", ebxml.DE_TYPE_CODE, type_code),
    ]
    for key, scheme, code in coded:
        if key not in skip:
            node.append(classification(scheme, id, code))
    if "patientId" not in skip:
        node.append(external_identifier(ebxml.DE_PATIENT_ID, id, patient_id, "XDSDocumentEntry.patientId"))
    if "uniqueId" not in skip:
        node.append(external_identifier(ebxml.DE_UNIQUE_ID, id, unique_id or new_oid(), "XDSDocumentEntry.uniqueId"))
    return node


def submission_set(
    patient_id: str,
    *,
    id: str = "SubmissionSet01",
    unique_id: str | None = None,
    source_id: str = SOURCE_ID,
    submission_time: str = "20240102030500",
    title: str | None = "Submission",
    comments: str | None = None,
    author_person: str | None = "^Welby^Marcus^^^Dr^MD",
    content_type_code: Code = CONTENT_TYPE_CODE,
    extra_slots: dict[str, Sequence[str]] | None = None,
    omit: Iterable[str] = (),
) -> Any:
    """``rim:RegistryPackage`` of a SubmissionSet, with its SubmissionSet classification inside.

    ``omit``: ``submissionTime``, ``contentTypeCode``, ``patientId``, ``sourceId``,
    ``uniqueId``, ``author``, ``classification`` (the SubmissionSet node classification).
    """
    skip = set(omit)
    node = etree.Element(q("rim", "RegistryPackage"), nsmap={"rim": RIM})
    node.set("id", id)
    for key, values in [("submissionTime", [submission_time]), *(extra_slots or {}).items()]:
        if key not in skip:
            node.append(slot(key, *values))
    if title is not None:
        node.append(name(title))
    if comments is not None:
        node.append(description(comments))
    if author_person is not None and "author" not in skip:
        node.append(author(ebxml.SS_AUTHOR, id, author_person))
    if "contentTypeCode" not in skip:
        node.append(classification(ebxml.SS_CONTENT_TYPE_CODE, id, content_type_code))
    if "classification" not in skip:
        node.append(node_classification(ebxml.SUBMISSION_SET_NODE, id))
    if "uniqueId" not in skip:
        node.append(external_identifier(ebxml.SS_UNIQUE_ID, id, unique_id or new_oid(), "XDSSubmissionSet.uniqueId"))
    if "sourceId" not in skip:
        node.append(external_identifier(ebxml.SS_SOURCE_ID, id, source_id, "XDSSubmissionSet.sourceId"))
    if "patientId" not in skip:
        node.append(external_identifier(ebxml.SS_PATIENT_ID, id, patient_id, "XDSSubmissionSet.patientId"))
    return node


def folder(
    patient_id: str,
    *,
    id: str = "Folder01",
    unique_id: str | None = None,
    title: str | None = "Folder",
    comments: str | None = None,
    codes: Iterable[Code] = (FOLDER_CODE,),
    extra_slots: dict[str, Sequence[str]] | None = None,
    omit: Iterable[str] = (),
) -> Any:
    """``rim:RegistryPackage`` of a Folder, with its Folder classification inside.

    ``omit``: ``codeList``, ``patientId``, ``uniqueId``, ``classification``.
    """
    skip = set(omit)
    node = etree.Element(q("rim", "RegistryPackage"), nsmap={"rim": RIM})
    node.set("id", id)
    for key, values in (extra_slots or {}).items():
        node.append(slot(key, *values))
    if title is not None:
        node.append(name(title))
    if comments is not None:
        node.append(description(comments))
    if "codeList" not in skip:
        for code in codes:
            node.append(classification(ebxml.FOLDER_CODE_LIST, id, code))
    if "classification" not in skip:
        node.append(node_classification(ebxml.FOLDER_NODE, id))
    if "uniqueId" not in skip:
        node.append(external_identifier(ebxml.FOLDER_UNIQUE_ID, id, unique_id or new_oid(), "XDSFolder.uniqueId"))
    if "patientId" not in skip:
        node.append(external_identifier(ebxml.FOLDER_PATIENT_ID, id, patient_id, "XDSFolder.patientId"))
    return node


def association(
    kind: str,
    source: str,
    target: str,
    *,
    id: str | None = None,
    status: str | None = None,
    extra_slots: dict[str, Sequence[str]] | None = None,
) -> Any:
    """``rim:Association``; ``kind`` is a full URN (ebxml.HAS_MEMBER, ebxml.RPLC...).

    ``status`` is the SubmissionSetStatus slot (``Original``/``Reference``) for a
    SubmissionSet HasMember; omit it for other kinds.
    """
    node = etree.Element(q("rim", "Association"), nsmap={"rim": RIM})
    node.set("id", id or _symbol("Association"))
    node.set("associationType", kind)
    node.set("sourceObject", source)
    node.set("targetObject", target)
    if status is not None:
        node.append(slot("SubmissionSetStatus", status))
    for key, values in (extra_slots or {}).items():
        node.append(slot(key, *values))
    return node


def request(*objects: Any) -> Any:
    """``lcm:SubmitObjectsRequest`` around the given registry objects, in order."""
    root = etree.Element(q("lcm", "SubmitObjectsRequest"), nsmap={"lcm": LCM, "rim": RIM})
    object_list = etree.SubElement(root, q("rim", "RegistryObjectList"))
    for node in objects:
        object_list.append(node)
    return root


def submission(
    patient_id: str,
    *,
    documents: int = 1,
    folder: bool = False,
    doc_ids: Sequence[str] | None = None,
    on_demand: bool = False,
    uuids: bool = False,
    ss_id: str | None = None,
    folder_id: str | None = None,
    ss: dict[str, Any] | None = None,
    document: dict[str, Any] | None = None,
    folder_args: dict[str, Any] | None = None,
    associations: Iterable[Any] = (),
    extra: Iterable[Any] = (),
) -> Any:
    """A complete ITI-42 request: SubmissionSet, ``documents`` DocumentEntries, optionally a Folder.

    Each document is a HasMember (Original) of the SubmissionSet; with ``folder``
    the Folder is a member too, each document is a member of the Folder, and each
    Folder HasMember association is itself a member of the SubmissionSet.
    ``ss``/``document``/``folder_args`` are keyword arguments for
    :func:`submission_set`/:func:`document_entry` (every document)/:func:`folder`.
    ``associations`` are appended as given (add their SubmissionSet HasMember yourself
    if the spec wants one); ``extra`` are further objects (e.g. another document_entry).
    """
    ss_id = ss_id or (new_uuid() if uuids else "SubmissionSet01")
    ids = list(doc_ids or [new_uuid() if uuids else f"Document{n:02d}" for n in range(1, documents + 1)])
    objects: list[Any] = [submission_set(patient_id, id=ss_id, **(ss or {}))]
    links: list[Any] = []
    for doc_id in ids:
        objects.append(document_entry(patient_id, id=doc_id, on_demand=on_demand, **(document or {})))
        links.append(association(ebxml.HAS_MEMBER, ss_id, doc_id, id=new_uuid() if uuids else None, status="Original"))
    if folder:
        fol_id = folder_id or (new_uuid() if uuids else "Folder01")
        objects.append(_folder(patient_id, id=fol_id, **(folder_args or {})))
        links.append(association(ebxml.HAS_MEMBER, ss_id, fol_id, id=new_uuid() if uuids else None, status="Original"))
        for doc_id in ids:
            member = association(ebxml.HAS_MEMBER, fol_id, doc_id, id=new_uuid() if uuids else None)
            links.append(member)
            links.append(association(ebxml.HAS_MEMBER, ss_id, member.get("id"), id=new_uuid() if uuids else None))
    return request(*objects, *extra, *links, *associations)


_folder = folder


def find(request: Any, object_id: str) -> Any:
    """The object of ``request`` (anywhere in it) whose id is ``object_id``."""
    found = request.xpath("//*[@id=$id]", id=object_id)
    if not found:
        raise KeyError(object_id)
    return found[0]


def unique_id_of(node: Any) -> str:
    """The uniqueId ExternalIdentifier value of a DocumentEntry, SubmissionSet or Folder element."""
    schemes = (ebxml.DE_UNIQUE_ID, ebxml.SS_UNIQUE_ID, ebxml.FOLDER_UNIQUE_ID)
    for ei in node.iter(q("rim", "ExternalIdentifier")):
        if ei.get("identificationScheme") in schemes:
            return str(ei.get("value"))
    raise KeyError("uniqueId")
