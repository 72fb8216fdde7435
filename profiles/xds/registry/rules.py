"""Metadata rules of ITI-42 as a table: what each object must carry, in which number and format.

One row per attribute of ITI TF-3 4.2.3 (DocumentEntry 4.2.3.2, SubmissionSet
4.2.3.3, Folder 4.2.3.4) with the optionality ITI TF-3 4.3.1 gives a registry
receiving ITI-42 (the Document Repository has added hash, size and
repositoryUniqueId). Cardinality is ``"1"``, ``"0..1"``, ``"1..*"``, ``"0..*"``
or ``"0"`` (must not be present); an On-Demand DocumentEntry has its own
column, since it has no stable content to hash. A change proposal is a row edit.

Every refusal here is XDSRegistryMetadataError with the object's id (as
submitted) as location; relations between objects (patients, uniqueness,
associations) are checked by the registry, which knows the database.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from esb.errors import XdsError
from profiles.xds import ebxml
from profiles.xds.registry.codesets import ANY, CodeSets
from profiles.xds.registry.metadata import (
    Classification,
    DocumentEntry,
    Folder,
    RegistryObject,
    SubmissionSet,
)
from profiles.xds.registry.patients import PatientId

METADATA_ERROR = "XDSRegistryMetadataError"


@dataclass(frozen=True)
class Rule:
    """One attribute: where it is coded (``part``, ``key``), how many, which format, which code set."""

    attribute: str  # ITI TF-3 name, for messages
    part: str  # slot | code | author | external | attribute | name | description
    key: str  # slot name, classification scheme, identification scheme or XML attribute
    cardinality: str  # "1", "0..1", "1..*", "0..*", "0"
    on_demand: str | None = None  # cardinality for an On-Demand DocumentEntry (None: the same)
    format: str | None = None  # name in FORMATS, checked on each value
    code_set: str | None = None  # affinity-domain code set (codesets.CODED / PLAIN)


R = Rule
#: ITI TF-3 4.2.3.2 and Table 4.3.1-3 (XDS DocumentEntry as registered by ITI-42)
DOCUMENT_ENTRY: tuple[Rule, ...] = (
    R("author", "author", ebxml.DE_AUTHOR, "0..*"),
    R("classCode", "code", ebxml.DE_CLASS_CODE, "1", code_set="classCode"),
    R("comments", "description", "", "0..1"),
    R("confidentialityCode", "code", ebxml.DE_CONFIDENTIALITY_CODE, "1..*", code_set="confidentialityCode"),
    R("creationTime", "slot", "creationTime", "1", on_demand="0..1", format="dtm"),
    R("eventCodeList", "code", ebxml.DE_EVENT_CODE, "0..*", code_set="eventCodeList"),
    R("formatCode", "code", ebxml.DE_FORMAT_CODE, "1", code_set="formatCode"),
    R("hash", "slot", "hash", "1", on_demand="0", format="sha1"),
    R(
        "healthcareFacilityTypeCode",
        "code",
        ebxml.DE_HEALTHCARE_FACILITY_TYPE_CODE,
        "1",
        code_set="healthcareFacilityTypeCode",
    ),
    R("languageCode", "slot", "languageCode", "1", format="language"),
    R("legalAuthenticator", "slot", "legalAuthenticator", "0..1"),
    R("mimeType", "attribute", "mimeType", "1", format="mime", code_set="mimeType"),
    R("patientId", "external", ebxml.DE_PATIENT_ID, "1", format="cx"),
    R("practiceSettingCode", "code", ebxml.DE_PRACTICE_SETTING_CODE, "1", code_set="practiceSettingCode"),
    R("referenceIdList", "slot", "urn:ihe:iti:xds:2013:referenceIdList", "0..*"),
    R("repositoryUniqueId", "slot", "repositoryUniqueId", "1", format="oid"),
    R("serviceStartTime", "slot", "serviceStartTime", "0..1", format="dtm"),
    R("serviceStopTime", "slot", "serviceStopTime", "0..1", format="dtm"),
    R("size", "slot", "size", "1", on_demand="0", format="integer"),
    R("sourcePatientId", "slot", "sourcePatientId", "1", format="cx_any"),
    R("sourcePatientInfo", "slot", "sourcePatientInfo", "0..*", format="pid"),
    R("title", "name", "", "0..1"),
    R("typeCode", "code", ebxml.DE_TYPE_CODE, "1", code_set="typeCode"),
    R("uniqueId", "external", ebxml.DE_UNIQUE_ID, "1", format="document_unique_id"),
    R("URI", "slot", "URI", "0..1"),
)

#: ITI TF-3 4.2.3.3
SUBMISSION_SET: tuple[Rule, ...] = (
    R("author", "author", ebxml.SS_AUTHOR, "0..*"),
    R("comments", "description", "", "0..1"),
    R("contentTypeCode", "code", ebxml.SS_CONTENT_TYPE_CODE, "1", code_set="contentTypeCode"),
    R("intendedRecipient", "slot", "intendedRecipient", "0..*"),
    R("patientId", "external", ebxml.SS_PATIENT_ID, "1", format="cx"),
    R("sourceId", "external", ebxml.SS_SOURCE_ID, "1", format="oid"),
    R("submissionTime", "slot", "submissionTime", "1", format="dtm"),
    R("title", "name", "", "0..1"),
    R("uniqueId", "external", ebxml.SS_UNIQUE_ID, "1", format="oid"),
)

#: ITI TF-3 4.2.3.4 (lastUpdateTime is the registry's to set)
FOLDER: tuple[Rule, ...] = (
    R("codeList", "code", ebxml.FOLDER_CODE_LIST, "1..*", code_set="codeList"),
    R("comments", "description", "", "0..1"),
    R("patientId", "external", ebxml.FOLDER_PATIENT_ID, "1", format="cx"),
    R("title", "name", "", "1"),
    R("uniqueId", "external", ebxml.FOLDER_UNIQUE_ID, "1", format="oid"),
)

#: sub-attributes of an author classification (ITI TF-3 4.2.3.1); one of the first three is required
AUTHOR_SLOTS = ("authorPerson", "authorInstitution", "authorTelecommunication", "authorRole", "authorSpecialty")

# -- value formats ---------------------------------------------------------------------
_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_MIME = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_CX_ANY = re.compile(r"[^\^&]+\^\^\^[^\^]*&[^\^&]+&ISO")
_PID = re.compile(r"PID-[0-9]+\|.*", re.DOTALL)
_DTM_LENGTHS = (4, 6, 8, 10, 12, 14)


def is_dtm(value: str) -> bool:
    """HL7 DTM as XDS uses it (ITI TF-3 4.2.3.1): UTC, YYYY[MM[DD[hh[mm[ss]]]]], no zone."""
    if not value.isascii() or not value.isdigit() or len(value) not in _DTM_LENGTHS:
        return False
    padded = value + "0101000000"[len(value) - 4 :]
    try:
        dt.datetime.strptime(padded, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def is_oid(value: str) -> bool:
    return len(value) <= 64 and _OID.fullmatch(value) is not None


def is_document_unique_id(value: str) -> bool:
    """OID, optionally ``^extension`` (ITI TF-3 4.2.3.2, uniqueId: root <= 64, extension <= 16 characters)."""
    root, sep, extension = value.partition("^")
    return is_oid(root) and (not sep or 0 < len(extension) <= 16)


FORMATS: dict[str, tuple[Callable[[str], bool], str]] = {
    "dtm": (is_dtm, "a DTM (YYYY[MM[DD[hh[mm[ss]]]]], UTC)"),
    "oid": (is_oid, "an OID of at most 64 characters"),
    "document_unique_id": (is_document_unique_id, "an OID with an optional ^extension"),
    "sha1": (lambda v: _SHA1.fullmatch(v) is not None, "40 hexadecimal digits (SHA-1)"),
    "integer": (lambda v: v.isascii() and v.isdigit() and len(v) <= 18, "a non-negative integer"),
    "mime": (lambda v: len(v) <= 100 and _MIME.fullmatch(v) is not None, "a MIME type"),
    "language": (lambda v: _LANGUAGE.fullmatch(v) is not None, "an RFC 5646 language tag"),
    "cx": (lambda v: PatientId.parse(v) is not None, "a CX id^^^&OID&ISO"),
    "cx_any": (lambda v: _CX_ANY.fullmatch(v) is not None, "a CX with an ISO assigning authority"),
    "pid": (lambda v: _PID.fullmatch(v) is not None, "PID-n|value"),
}

#: formats of patient data: their values are never echoed in an answer
PATIENT_FORMATS = frozenset({"cx", "cx_any", "pid"})


def _bounds(cardinality: str) -> tuple[int, int | None]:
    low, _, high = cardinality.partition("..")
    if not high:
        return int(low), int(low)
    return int(low), None if high == "*" else int(high)


def _count_text(attribute: str, cardinality: str, found: int) -> str:
    if cardinality == "0":
        return f"{attribute} must not be present"
    wanted = cardinality.replace("..*", " or more").replace("..", " to ")
    return f"{attribute} must occur {wanted} time(s), found {found}"


def rules_for(obj: RegistryObject) -> tuple[Rule, ...]:
    if isinstance(obj, DocumentEntry):
        return DOCUMENT_ENTRY
    if isinstance(obj, SubmissionSet):
        return SUBMISSION_SET
    if isinstance(obj, Folder):
        return FOLDER
    return ()


def check(obj: RegistryObject, code_sets: CodeSets = ANY) -> list[XdsError]:
    """Every rule the object breaks, as XDSRegistryMetadataError located at the object's id."""
    errors = [XdsError(p.text, code=p.code, location=p.location or obj.id) for p in obj.problems]
    kind = type(obj).__name__
    on_demand = False
    if isinstance(obj, DocumentEntry):
        if obj.object_type not in ebxml.DOCUMENT_TYPES:
            errors.append(_error(obj, f"DocumentEntry objectType {obj.object_type!r} is neither stable nor on-demand"))
        on_demand = obj.on_demand
    for rule in rules_for(obj):
        cardinality = rule.on_demand if on_demand and rule.on_demand is not None else rule.cardinality
        values = _values(obj, rule)
        low, high = _bounds(cardinality)
        if len(values) < low or (high is not None and len(values) > high):
            errors.append(_error(obj, f"{kind}.{_count_text(rule.attribute, cardinality, len(values))}"))
        if rule.part == "code":
            errors.extend(_check_codes(obj, rule, code_sets))
            continue
        if rule.part == "author":
            errors.extend(_check_authors(obj, obj.codes(rule.key)))
            continue
        for value in values:
            errors.extend(_check_value(obj, rule, value, code_sets))
    return errors


def _values(obj: RegistryObject, rule: Rule) -> Sequence[object]:
    if rule.part == "slot":
        return obj.slots.get(rule.key, [])
    if rule.part in ("code", "author"):
        return obj.codes(rule.key)
    if rule.part == "external":
        return [e.value for e in obj.external_ids if e.scheme == rule.key]
    if rule.part == "attribute":
        value = obj.element.get(rule.key)
        return [] if value is None else [value]
    tag = "Name" if rule.part == "name" else "Description"
    node = obj.element.find(ebxml.q("rim", tag))
    if node is None:
        return []
    return [s.get("value") or "" for s in node.findall(ebxml.q("rim", "LocalizedString"))]


def _check_value(obj: RegistryObject, rule: Rule, value: object, code_sets: CodeSets) -> Iterable[XdsError]:
    text = str(value)
    name = f"{type(obj).__name__}.{rule.attribute}"
    if not text.strip():
        yield _error(obj, f"{name} has an empty value")
        return
    if rule.format is not None:
        test, shape = FORMATS[rule.format]
        if not test(text):
            shown = "" if rule.format in PATIENT_FORMATS else f" {_show(text)}"
            yield _error(obj, f"{name} value{shown} is not {shape}")
            return
    if rule.code_set is not None and not code_sets.accepts_value(rule.code_set, text):
        yield _error(obj, f"{name} value {_show(text)} is not in the affinity domain's {rule.code_set} set")


def _check_codes(obj: RegistryObject, rule: Rule, code_sets: CodeSets) -> Iterable[XdsError]:
    """A coded value: nodeRepresentation, one codingScheme (ITI TF-3 4.2.3.1), and in the code set."""
    name = f"{type(obj).__name__}.{rule.attribute}"
    for item in obj.codes(rule.key):
        if not item.code:
            yield _error(obj, f"{name} classification {item.id} has no nodeRepresentation (code)")
            continue
        scheme = item.coding_scheme
        if not scheme:
            yield _error(obj, f"{name} code {_show(item.code)} needs exactly one codingScheme slot value")
            continue
        if rule.code_set is not None and not code_sets.accepts(rule.code_set, item.code, scheme):
            yield _error(
                obj,
                f"{name} code {_show(item.code)} ({_show(scheme)}) is not in the affinity domain's {rule.code_set} set",
            )


def _check_authors(obj: RegistryObject, authors: list[Classification]) -> Iterable[XdsError]:
    name = f"{type(obj).__name__}.author"
    for item in authors:
        if item.code:
            yield _error(obj, f"{name} classification {item.id} must have an empty nodeRepresentation")
        if not any(item.slots.get(s) for s in AUTHOR_SLOTS[:3]):
            yield _error(obj, f"{name} needs authorPerson, authorInstitution or authorTelecommunication")
        if len(item.slots.get("authorPerson", [])) > 1:
            yield _error(obj, f"{name}.authorPerson must have at most one value")


def _error(obj: RegistryObject, text: str) -> XdsError:
    return XdsError(text, code=METADATA_ERROR, location=obj.id)


def _show(value: str, limit: int = 80) -> str:
    """A value for an error message: quoted and cut, so a hostile value cannot flood the answer."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
