"""The stored queries and their parameters as data (ITI TF-2a 3.18.4.1.2.3.7, tables per query).

A change to a query's parameters (a new CP, an option) is an edit of this
table; the binder (``binding.py``) checks requests against it and the query
code reads only what the table declares.

Columns of a parameter: required (R) or optional (O), single (--) or multiple
(M) values, the value type, and whether several Slots of the same name are
allowed (AND/OR semantics, 3.18.4.1.2.3.5; only on the multi-valued metadata
eventCodeList, confidentialityCode, Folder codeList and referenceIdList).
``one_of`` lists parameters of which exactly one must be given
(``$XDSDocumentEntryEntryUUID`` / ``$XDSDocumentEntryUniqueId``...).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from profiles.xds import ebxml


class Kind(Enum):
    """Value types; the binder turns each into a Python value (see binding.py)."""

    STRING = "string"  # quoted
    PATIENT = "patient"  # quoted CX id^^^&oid&ISO
    CODE = "code"  # quoted code^^codingScheme -> (code, scheme)
    TIME = "time"  # unquoted DTM, 4..14 digits -> padded to 14
    STATUS = "status"  # quoted urn:oasis:names:tc:ebxml-regrep:StatusType:...
    DOCUMENT_TYPE = "objectType"  # quoted stable / on-demand DocumentEntry type UUID
    INT = "int"  # unquoted integer


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    required: bool = False
    multiple: bool = False
    and_or: bool = False
    #: the only values allowed, if limited
    allowed: tuple[object, ...] = ()


@dataclass(frozen=True)
class QuerySpec:
    name: str
    uuid: str
    params: tuple[Param, ...]
    #: groups of parameters of which exactly one is required
    one_of: tuple[tuple[str, ...], ...] = ()

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _param(name: str, kind: Kind, flags: str = "") -> Param:
    """``flags``: R required, M multiple, A AND/OR semantics."""
    return Param(name, kind, required="R" in flags, multiple="M" in flags or "A" in flags, and_or="A" in flags)


S, P, C, T, ST, DT, N = Kind.STRING, Kind.PATIENT, Kind.CODE, Kind.TIME, Kind.STATUS, Kind.DOCUMENT_TYPE, Kind.INT

DE = "$XDSDocumentEntry"
DE_PATIENT_ID = f"{DE}PatientId"
DE_ENTRY_UUID = f"{DE}EntryUUID"
DE_UNIQUE_ID = f"{DE}UniqueId"
DE_STATUS = f"{DE}Status"
DE_TYPE = f"{DE}Type"
DE_FORMAT_CODE = f"{DE}FormatCode"
DE_CONFIDENTIALITY_CODE = f"{DE}ConfidentialityCode"
DE_AUTHOR_PERSON = f"{DE}AuthorPerson"
DE_REFERENCE_ID_LIST = f"{DE}ReferenceIdList"
SS_PATIENT_ID = "$XDSSubmissionSetPatientId"
SS_ENTRY_UUID = "$XDSSubmissionSetEntryUUID"
SS_UNIQUE_ID = "$XDSSubmissionSetUniqueId"
SS_STATUS = "$XDSSubmissionSetStatus"
SS_SOURCE_ID = "$XDSSubmissionSetSourceId"
SS_AUTHOR_PERSON = "$XDSSubmissionSetAuthorPerson"
SS_CONTENT_TYPE = "$XDSSubmissionSetContentType"
FOLDER_PATIENT_ID = "$XDSFolderPatientId"
FOLDER_ENTRY_UUID = "$XDSFolderEntryUUID"
FOLDER_UNIQUE_ID = "$XDSFolderUniqueId"
FOLDER_STATUS = "$XDSFolderStatus"
FOLDER_CODE_LIST = "$XDSFolderCodeList"
PATIENT_ID = "$patientId"
UUID = "$uuid"
ASSOCIATION_TYPES = "$AssociationTypes"
HOME = "$homeCommunityId"
METADATA_LEVEL = "$MetadataLevel"

#: coded parameters -> classification scheme of the codes table they match
CODE_SCHEMES = {
    f"{DE}ClassCode": ebxml.DE_CLASS_CODE,
    f"{DE}TypeCode": ebxml.DE_TYPE_CODE,
    f"{DE}PracticeSettingCode": ebxml.DE_PRACTICE_SETTING_CODE,
    f"{DE}HealthcareFacilityTypeCode": ebxml.DE_HEALTHCARE_FACILITY_TYPE_CODE,
    f"{DE}EventCodeList": ebxml.DE_EVENT_CODE,
    DE_CONFIDENTIALITY_CODE: ebxml.DE_CONFIDENTIALITY_CODE,
    DE_FORMAT_CODE: ebxml.DE_FORMAT_CODE,
    SS_CONTENT_TYPE: ebxml.SS_CONTENT_TYPE_CODE,
    FOLDER_CODE_LIST: ebxml.FOLDER_CODE_LIST,
}

#: time-range parameters -> (objects column, bound): From is inclusive, To exclusive
TIME_RANGES = {
    f"{DE}CreationTimeFrom": ("creation_time", "from"),
    f"{DE}CreationTimeTo": ("creation_time", "to"),
    f"{DE}ServiceStartTimeFrom": ("service_start_time", "from"),
    f"{DE}ServiceStartTimeTo": ("service_start_time", "to"),
    f"{DE}ServiceStopTimeFrom": ("service_stop_time", "from"),
    f"{DE}ServiceStopTimeTo": ("service_stop_time", "to"),
    "$XDSSubmissionSetSubmissionTimeFrom": ("submission_time", "from"),
    "$XDSSubmissionSetSubmissionTimeTo": ("submission_time", "to"),
    "$XDSFolderLastUpdateTimeFrom": ("last_update_time", "from"),
    "$XDSFolderLastUpdateTimeTo": ("last_update_time", "to"),
}

#: every query accepts these: $homeCommunityId (3.18.4.1.2.3.8), and $MetadataLevel of the
#: Metadata Update option, 1 or 2, which read the same here (the registry keeps one version per object)
_COMMON = (_param(HOME, S), Param(METADATA_LEVEL, N, allowed=(1, 2)))

#: DocumentEntry attribute filters shared by FindDocuments and FindDocumentsByReferenceId
_DOCUMENT_FILTERS = (
    _param(DE_PATIENT_ID, P, "R"),
    _param(f"{DE}ClassCode", C, "M"),
    _param(f"{DE}TypeCode", C, "M"),
    _param(f"{DE}PracticeSettingCode", C, "M"),
    _param(f"{DE}CreationTimeFrom", T),
    _param(f"{DE}CreationTimeTo", T),
    _param(f"{DE}ServiceStartTimeFrom", T),
    _param(f"{DE}ServiceStartTimeTo", T),
    _param(f"{DE}ServiceStopTimeFrom", T),
    _param(f"{DE}ServiceStopTimeTo", T),
    _param(f"{DE}HealthcareFacilityTypeCode", C, "M"),
    _param(f"{DE}EventCodeList", C, "A"),
    _param(DE_CONFIDENTIALITY_CODE, C, "A"),
    _param(DE_AUTHOR_PERSON, S, "M"),
    _param(DE_FORMAT_CODE, C, "M"),
    _param(DE_STATUS, ST, "RM"),
    _param(DE_TYPE, DT, "M"),
)

#: filters on the DocumentEntries of GetAll, GetSubmissionSetAndContents, GetFolderAndContents
_CONTENT_FILTERS = (_param(DE_FORMAT_CODE, C, "M"), _param(DE_CONFIDENTIALITY_CODE, C, "A"), _param(DE_TYPE, DT, "M"))

_DOCUMENT_IDS = (DE_ENTRY_UUID, DE_UNIQUE_ID)


def _spec(name: str, *params: Param, one_of: tuple[tuple[str, ...], ...] = ()) -> QuerySpec:
    return QuerySpec(name, ebxml.STORED_QUERIES[name], (*params, *_COMMON), one_of)


SPECS: tuple[QuerySpec, ...] = (
    _spec("FindDocuments", *_DOCUMENT_FILTERS),
    _spec("FindDocumentsByReferenceId", *_DOCUMENT_FILTERS, _param(DE_REFERENCE_ID_LIST, S, "RA")),
    _spec(
        "FindSubmissionSets",
        _param(SS_PATIENT_ID, P, "R"),
        _param(SS_SOURCE_ID, S, "M"),
        _param("$XDSSubmissionSetSubmissionTimeFrom", T),
        _param("$XDSSubmissionSetSubmissionTimeTo", T),
        _param(SS_AUTHOR_PERSON, S),
        _param(SS_CONTENT_TYPE, C, "M"),
        _param(SS_STATUS, ST, "RM"),
    ),
    _spec(
        "FindFolders",
        _param(FOLDER_PATIENT_ID, P, "R"),
        _param("$XDSFolderLastUpdateTimeFrom", T),
        _param("$XDSFolderLastUpdateTimeTo", T),
        _param(FOLDER_CODE_LIST, C, "A"),
        _param(FOLDER_STATUS, ST, "RM"),
    ),
    _spec(
        "GetAll",
        _param(PATIENT_ID, P, "R"),
        _param(DE_STATUS, ST, "RM"),
        _param(SS_STATUS, ST, "RM"),
        _param(FOLDER_STATUS, ST, "RM"),
        *_CONTENT_FILTERS,
    ),
    _spec("GetDocuments", _param(DE_ENTRY_UUID, S, "M"), _param(DE_UNIQUE_ID, S, "M"), one_of=(_DOCUMENT_IDS,)),
    _spec(
        "GetFolders",
        _param(FOLDER_ENTRY_UUID, S, "M"),
        _param(FOLDER_UNIQUE_ID, S, "M"),
        one_of=((FOLDER_ENTRY_UUID, FOLDER_UNIQUE_ID),),
    ),
    _spec("GetAssociations", _param(UUID, S, "RM")),
    _spec(
        "GetDocumentsAndAssociations",
        _param(DE_ENTRY_UUID, S, "M"),
        _param(DE_UNIQUE_ID, S, "M"),
        one_of=(_DOCUMENT_IDS,),
    ),
    _spec("GetSubmissionSets", _param(UUID, S, "RM")),
    _spec(
        "GetSubmissionSetAndContents",
        _param(SS_ENTRY_UUID, S),
        _param(SS_UNIQUE_ID, S),
        *_CONTENT_FILTERS,
        one_of=((SS_ENTRY_UUID, SS_UNIQUE_ID),),
    ),
    _spec(
        "GetFolderAndContents",
        _param(FOLDER_ENTRY_UUID, S),
        _param(FOLDER_UNIQUE_ID, S),
        *_CONTENT_FILTERS,
        one_of=((FOLDER_ENTRY_UUID, FOLDER_UNIQUE_ID),),
    ),
    _spec("GetFoldersForDocument", _param(DE_ENTRY_UUID, S), _param(DE_UNIQUE_ID, S), one_of=(_DOCUMENT_IDS,)),
    _spec(
        "GetRelatedDocuments",
        _param(DE_ENTRY_UUID, S),
        _param(DE_UNIQUE_ID, S),
        _param(ASSOCIATION_TYPES, S, "RM"),
        _param(DE_TYPE, DT, "M"),
        one_of=(_DOCUMENT_IDS,),
    ),
)

BY_UUID = {spec.uuid: spec for spec in SPECS}
