"""Which attributes the index keeps at each level, and the column values it matches on.

The lists follow the Q/R information model (PS3.4 C.6.1.1.2-5 and C.6.2.1) and
what QIDO-RS returns by default (PS3.18 10.6.3.3), plus the descriptive
attributes viewers show in study lists. A level keeps its attributes as DICOM
JSON (``attributes`` column), exactly as received, to answer with; the
columns hold the values matching needs, normalized.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from profiles.dicom.api import Level

PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "TypeOfPatientID",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "PatientComments",
    "EthnicGroup",
    "PatientSpeciesDescription",
    "PatientBreedDescription",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    "PatientIdentityRemoved",
)
STUDY_KEYWORDS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "StudyID",
    "ReferringPhysicianName",
    "StudyDescription",
    "ProcedureCodeSequence",
    "NameOfPhysiciansReadingStudy",
    "AdmittingDiagnosesDescription",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "Occupation",
    "AdditionalPatientHistory",
    "TimezoneOffsetFromUTC",
)
SERIES_KEYWORDS = (
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "SeriesDate",
    "SeriesTime",
    "BodyPartExamined",
    "Laterality",
    "ProtocolName",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID",
    "PerformedProcedureStepDescription",
    "RequestAttributesSequence",
    "InstitutionName",
    "InstitutionalDepartmentName",
    "StationName",
    "Manufacturer",
    "ManufacturerModelName",
    "OperatorsName",
    "PerformingPhysicianName",
)
INSTANCE_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "ImageType",
    "AcquisitionNumber",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "ContentDate",
    "ContentTime",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "ImageComments",
    "ConceptNameCodeSequence",
    "CompletionFlag",
    "VerificationFlag",
    "ContentLabel",
    "ContentDescription",
    "ContentCreatorName",
    "PresentationCreationDate",
    "PresentationCreationTime",
    "DocumentTitle",
    "MIMETypeOfEncapsulatedDocument",
)
KEYWORDS: dict[Level, tuple[str, ...]] = {
    "PATIENT": PATIENT_KEYWORDS,
    "STUDY": STUDY_KEYWORDS,
    "SERIES": SERIES_KEYWORDS,
    "IMAGE": INSTANCE_KEYWORDS,
}
#: tag -> level, for the attributes a response can take from the index
LEVEL_OF_TAG: dict[int, Level] = {
    int(tag): level
    for level, keywords in KEYWORDS.items()
    for keyword in keywords
    if (tag := tag_for_keyword(keyword)) is not None
}
#: a sequence kept at a level is capped, so one odd instance cannot bloat the index
MAX_SEQUENCE_JSON = 8 * 1024


def level_json(ds: Dataset, level: Level) -> dict[str, Any]:
    """The level's attributes present in ``ds`` as DICOM JSON (tag hex -> element), values as received."""
    out: dict[str, Any] = {}
    for keyword in KEYWORDS[level]:
        tag = tag_for_keyword(keyword)
        if tag is None or tag not in ds:
            continue
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length not in (0, 0xFFFFFFFF):
            continue  # deferred at read time: large, not index material
        element = ds[tag].to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=MAX_SEQUENCE_JSON)
        if "InlineBinary" in element or (element.get("vr") == "SQ" and len(str(element)) > MAX_SEQUENCE_JSON):
            continue
        out[f"{tag:08X}"] = element
    return out


def text(ds: Dataset, keyword: str, size: int = 64) -> str:
    """The attribute as one string (multi-valued: backslash-joined), clipped to its column's size."""
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, MultiValue | list):
        value = "\\".join(str(v) for v in value)
    return str(value).replace("\x00", "").strip()[:size]


def number(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def norm_time(value: str, *, upper: bool = False) -> str:
    """TM as ``HHMMSS.FFFFFF`` so times compare as text; missing parts are the start (or end) of the period.

    ``upper`` for the end of a range: ``1200`` ends at ``120059.999999``.
    """
    value = value.strip().replace(":", "")
    whole, _, fraction = value.partition(".")
    if not whole.isdigit() or len(whole) % 2 or len(whole) > 6 or (fraction and not fraction.isdigit()):
        return value[:16]
    whole = whole + "235959"[len(whole) :] if upper else whole.ljust(6, "0")
    fraction = fraction.ljust(6, "9" if upper else "0")[:6]
    return f"{whole}.{fraction}"


def pn_key(value: str) -> str:
    """A person name as the index compares it: upper case, trailing empty components dropped."""
    groups = [group.rstrip("^ ") for group in value.upper().split("=")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def patient_columns(ds: Dataset) -> dict[str, Any]:
    issuer_uid = ""
    qualifiers = ds.get("IssuerOfPatientIDQualifiersSequence")
    if qualifiers:
        issuer_uid = text(qualifiers[0], "UniversalEntityID", 200)
    return {
        "patient_id": text(ds, "PatientID", 200),
        "issuer": text(ds, "IssuerOfPatientID", 200),
        "issuer_uid": issuer_uid,
        "name_upper": pn_key(text(ds, "PatientName", 400)),
        "birth_date": text(ds, "PatientBirthDate", 8),
        "sex": text(ds, "PatientSex", 16),
        "attributes": level_json(ds, "PATIENT"),
    }


def study_columns(ds: Dataset) -> dict[str, Any]:
    return {
        "study_date": text(ds, "StudyDate", 8),
        "study_time": norm_time(text(ds, "StudyTime", 16)) if ds.get("StudyTime") else "",
        "accession": text(ds, "AccessionNumber", 64),
        "study_id": text(ds, "StudyID", 64),
        "description": text(ds, "StudyDescription", 400),
        "referring_upper": pn_key(text(ds, "ReferringPhysicianName", 400)),
        "attributes": level_json(ds, "STUDY"),
    }


def series_columns(ds: Dataset) -> dict[str, Any]:
    pps_time = text(ds, "PerformedProcedureStepStartTime", 16)
    return {
        "modality": text(ds, "Modality", 16),
        "series_number": number(ds, "SeriesNumber"),
        "description": text(ds, "SeriesDescription", 400),
        "body_part": text(ds, "BodyPartExamined", 64),
        "series_date": text(ds, "SeriesDate", 8),
        "pps_start_date": text(ds, "PerformedProcedureStepStartDate", 8),
        "pps_start_time": norm_time(pps_time) if pps_time else "",
        "attributes": level_json(ds, "SERIES"),
    }


def instance_columns(ds: Dataset) -> dict[str, Any]:
    return {
        "instance_number": number(ds, "InstanceNumber"),
        "attributes": level_json(ds, "IMAGE"),
    }
