"""C-FIND and QIDO-RS over the index: one SQL query per request, responses built from the rows.

Matching keys (PS3.4 C.6.1.1 / C.6.2.1) map to indexed columns; keys of the
query level and of the levels above it are matched (relational at the levels
above, which a hierarchical request never contradicts). Everything else a
request names is a return key: answered from the level's stored attributes
when the index keeps it (a matching value there is not applied: PS3.4
C.2.2.1.3 lets an SCP treat an optional key as a return key), else returned
empty; never an error.

Sequence matching: only where it is cheap, the Universal Entity ID of the
Issuer of Patient ID Qualifiers Sequence, matched like Issuer of Patient ID.
Other sequences in a request are return keys.

A Patient ID whose issuer is the EMPI master domain (namespace or OID) is a
query for that person: it finds the studies of every local ID the EMPI links
to the person, and of persons merged into it (:mod:`profiles.dicom.empi_link`).
The response then carries each study's own local Patient ID and issuer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.jsonrep import JSON_VALUE_KEYS
from pydicom.sequence import Sequence
from sqlalchemy import ColumnElement, Connection, Select, and_, exists, false, func, or_, select, true

from esb.errors import DicomError
from esb.security.users import Scope
from profiles.dicom import empi_link
from profiles.dicom.api import Level, Model
from profiles.dicom.attributes import LEVEL_OF_TAG
from profiles.dicom.matching import Kind, condition, query_values, wildcard
from profiles.dicom.schema import instances, patients, series, studies

LEVELS: tuple[Level, ...] = ("PATIENT", "STUDY", "SERIES", "IMAGE")
TABLES = {"PATIENT": patients, "STUDY": studies, "SERIES": series, "IMAGE": instances}
PREFIX = {"PATIENT": "p", "STUDY": "st", "SERIES": "se", "IMAGE": "i"}
QUERY_FAILED = 0xA900  # Identifier does not match SOP Class (PS3.4 C.4.1.1.4)
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
SKIPPED_TAGS = frozenset({0x00080005, 0x00080052, 0x00080054})
#: InstitutionalDepartmentName (0008,1040), a series attribute: what department scopes match
DEPARTMENT = "00081040"


@dataclass(frozen=True)
class Key:
    level: Level
    column: str
    kind: Kind


#: the keys matched in SQL
KEYS: dict[str, Key] = {
    "PatientID": Key("PATIENT", "patient_id", "text"),
    "PatientName": Key("PATIENT", "name_upper", "pn"),
    "PatientBirthDate": Key("PATIENT", "birth_date", "date"),
    "PatientSex": Key("PATIENT", "sex", "text"),
    "StudyInstanceUID": Key("STUDY", "study_uid", "uid"),
    "StudyDate": Key("STUDY", "study_date", "date"),
    "StudyTime": Key("STUDY", "study_time", "time"),
    "AccessionNumber": Key("STUDY", "accession", "text"),
    "StudyID": Key("STUDY", "study_id", "text"),
    "StudyDescription": Key("STUDY", "description", "text"),
    "ReferringPhysicianName": Key("STUDY", "referring_upper", "pn"),
    "SeriesInstanceUID": Key("SERIES", "series_uid", "uid"),
    "Modality": Key("SERIES", "modality", "text"),
    "SeriesNumber": Key("SERIES", "series_number", "int"),
    "SeriesDescription": Key("SERIES", "description", "text"),
    "BodyPartExamined": Key("SERIES", "body_part", "text"),
    "SeriesDate": Key("SERIES", "series_date", "date"),
    "PerformedProcedureStepStartDate": Key("SERIES", "pps_start_date", "date"),
    "PerformedProcedureStepStartTime": Key("SERIES", "pps_start_time", "time"),
    "SOPInstanceUID": Key("IMAGE", "sop_uid", "uid"),
    "SOPClassUID": Key("IMAGE", "sop_class_uid", "uid"),
    "InstanceNumber": Key("IMAGE", "instance_number", "int"),
}
#: attributes computed from the index's counts: keyword -> (level, column, VR)
COMPUTED: dict[str, tuple[Level, str, str]] = {
    "NumberOfPatientRelatedStudies": ("PATIENT", "num_studies", "IS"),
    "NumberOfPatientRelatedSeries": ("PATIENT", "num_series", "IS"),
    "NumberOfPatientRelatedInstances": ("PATIENT", "num_instances", "IS"),
    "NumberOfStudyRelatedSeries": ("STUDY", "num_series", "IS"),
    "NumberOfStudyRelatedInstances": ("STUDY", "num_instances", "IS"),
    "ModalitiesInStudy": ("STUDY", "modalities", "CS"),
    "NumberOfSeriesRelatedInstances": ("SERIES", "num_instances", "IS"),
    "InstanceAvailability": ("IMAGE", "availability", "CS"),
    "AvailableTransferSyntaxUID": ("IMAGE", "transfer_syntax", "UI"),
}
#: the unique key of each level (PS3.4 C.6.1.1 / C.6.2.1), always in a response
UNIQUE = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
UNIQUE_COLUMN = {"PATIENT": "patient_id", "STUDY": "study_uid", "SERIES": "series_uid", "IMAGE": "sop_uid"}
#: what a query reads of each level (no timestamps, no matching copies): narrow rows, less to parse
COLUMNS: dict[Level, tuple[str, ...]] = {
    level: ("pk", UNIQUE_COLUMN[level], "attributes", *(c for at, c, _ in COMPUTED.values() if at == level))
    for level in LEVELS
}


@dataclass(frozen=True)
class Part:
    """Where one attribute of a response comes from, decided once per request."""

    tag: int
    vr: str
    #: row key of a computed value (a count, ModalitiesInStudy...)
    computed: str | None = None
    #: row key of the attributes column that keeps it
    stored: str | None = None


def depth(level: Level) -> int:
    return LEVELS.index(level)


def check_level(level: str, model: Model) -> Level:
    if level not in LEVELS:
        raise DicomError(f"unknown query level {level!r} (PATIENT, STUDY, SERIES or IMAGE)", status=QUERY_FAILED)
    if level == "PATIENT" and model != "patient":
        raise DicomError("the Study Root model has no PATIENT level", status=QUERY_FAILED)
    return level


def joined(level: Level) -> Select[Any]:
    """The level's table joined with those above it; the columns a response uses, labelled ``<prefix>_<name>``."""
    columns = [
        TABLES[lv].c[name].label(f"{PREFIX[lv]}_{name}") for lv in LEVELS[: depth(level) + 1] for name in COLUMNS[lv]
    ]
    source: Any = patients
    if depth(level) >= 1:
        source = source.join(studies, studies.c.patient_pk == patients.c.pk)
    if depth(level) >= 2:
        source = source.join(series, series.c.study_pk == studies.c.pk)
    if depth(level) >= 3:
        source = source.join(instances, instances.c.series_pk == series.c.pk)
    return select(*columns).select_from(source)


class Finder:
    """Builds and runs the queries; one per request (plus the EMPI lookups of a master-ID request)."""

    def __init__(self, master_oid: str, ae_title: str) -> None:
        self.master_oid = master_oid
        self.ae_title = ae_title

    def conditions(self, conn: Connection, level: Level, identifier: Dataset) -> list[ColumnElement[bool]]:
        dialect = conn.dialect.name
        found: list[ColumnElement[bool]] = []
        patient = self.patient_conditions(conn, identifier, dialect)
        found.extend(patient)
        for element in identifier:
            keyword = element.keyword
            if keyword == "ModalitiesInStudy":
                if depth(level) >= 1:
                    found.extend(self._modalities(element.value, dialect))
                continue
            key = KEYS.get(keyword)
            if key is None or keyword == "PatientID" or element.VR == "SQ" or depth(key.level) > depth(level):
                continue
            clause = condition(TABLES[key.level].c[key.column], key.kind, query_values(element.value), dialect)
            if clause is not None:
                found.append(clause)
        return found

    def patient_conditions(self, conn: Connection, identifier: Dataset, dialect: str) -> list[ColumnElement[bool]]:
        """Patient ID with its issuer: a local ID (issuer by any of its names), or the EMPI master ID."""
        ids = query_values(identifier.get("PatientID"))
        issuers = query_values(identifier.get("IssuerOfPatientID"))
        qualifiers = identifier.get("IssuerOfPatientIDQualifiersSequence")
        if qualifiers:
            issuers += query_values(qualifiers[0].get("UniversalEntityID"))
        single = len(ids) == 1 and not _has_wildcard(ids[0])
        master = [i for i in issuers if single and empi_link.is_master_issuer(conn, i, self.master_oid)]
        if master:
            names = empi_link.issuer_names(conn, master[0]) | {self.master_oid}
            pks = empi_link.master_patient_pks(conn, ids[0], names)
            return [patients.c.pk.in_(pks)] if pks else [false()]
        found: list[ColumnElement[bool]] = []
        id_clause = condition(patients.c.patient_id, "text", ids, dialect)
        if id_clause is not None:
            found.append(id_clause)
        for value in issuers:
            if _has_wildcard(value):
                found.append(
                    or_(wildcard(patients.c.issuer, value, dialect), wildcard(patients.c.issuer_uid, value, dialect))
                )
            else:
                known = sorted(empi_link.issuer_names(conn, value))
                found.append(or_(patients.c.issuer.in_(known), patients.c.issuer_uid.in_(known)))
        return found

    def _modalities(self, value: Any, dialect: str) -> list[ColumnElement[bool]]:
        """ModalitiesInStudy: a study with a series of any of the modalities asked for."""
        other = series.alias("modality_series")
        clause = condition(other.c.modality, "text", query_values(value), dialect)
        if clause is None:
            return []
        return [exists().where(other.c.study_pk == studies.c.pk, clause)]

    def query(
        self,
        conn: Connection,
        level: Level,
        identifier: Dataset,
        *,
        limit: int | None,
        offset: int,
        scope: Iterable[Scope] | None = None,
    ) -> list[Any]:
        statement = joined(level).where(*self.conditions(conn, level, identifier))
        if scope is not None:
            visible = in_scope(scope)
            statement = statement.where(visible if level != "PATIENT" else exists().where(
                studies.c.patient_pk == patients.c.pk, visible))  # fmt: skip
        statement = statement.order_by(TABLES[level].c.pk).offset(offset or None).limit(limit)
        return list(conn.execute(statement))

    def responses(self, rows: list[Any], level: Level, identifier: Dataset, model: Model) -> Iterator[Dataset]:
        parts = self.plan(identifier, level, model)
        for row in rows:
            yield self.response(row._mapping, level, parts)

    def plan(self, identifier: Dataset, level: Level, model: Model) -> list[Part]:
        """The response's attributes: those requested (computed, stored or empty), then the unique keys."""
        parts: list[Part] = []
        for element in identifier:
            tag = int(element.tag)
            if tag in SKIPPED_TAGS or element.tag.element == 0 or element.tag.is_private:
                continue
            if element.keyword in COMPUTED:
                at, column, vr = COMPUTED[element.keyword]
                if depth(at) <= depth(level):
                    parts.append(Part(tag, vr, computed=f"{PREFIX[at]}_{column}"))
                    continue
            owner = LEVEL_OF_TAG.get(tag)
            stored = f"{PREFIX[owner]}_attributes" if owner is not None and depth(owner) <= depth(level) else None
            parts.append(Part(tag, element.VR, stored=stored))
        for lv in LEVELS[: depth(level) + 1]:
            if lv != "PATIENT" or model == "patient":
                tag = int(tag_for_keyword(UNIQUE[lv]) or 0)
                parts.append(Part(tag, "LO" if lv == "PATIENT" else "UI", computed=f"{PREFIX[lv]}_{UNIQUE_COLUMN[lv]}"))
        return parts

    def response(self, row: Any, level: Level, parts: list[Part]) -> Dataset:
        ds = Dataset()
        for part in parts:
            if part.tag in ds:
                if ds[part.tag].value not in (None, ""):
                    continue  # a unique key already answered from the stored attributes
                del ds[part.tag]
            if part.computed is not None:
                ds.add(_computed(part, row[part.computed]))
                continue
            stored = row[part.stored].get(f"{part.tag:08X}") if part.stored is not None else None
            if stored is not None:
                ds.add(_from_json(part.tag, stored))
            else:
                ds.add(DataElement(part.tag, part.vr, Sequence() if part.vr == "SQ" else None))
        ds.add(DataElement(0x00080052, "CS", level))
        ds.add(DataElement(0x00080054, "AE", self.ae_title))
        if not _ascii(ds):
            ds.add(DataElement(0x00080005, "CS", "ISO_IR 192"))
        return ds


def in_scope(scopes: Iterable[Scope]) -> ColumnElement[bool]:
    """Studies a scoped grant may see (A2.6, :mod:`esb.authz`): for any one of its scopes, a series of
    an allowed modality and a series from an allowed department (InstitutionalDepartmentName, kept in
    the series' stored attributes); both compared upper-cased. No scope at all: nothing."""
    alternatives: list[ColumnElement[bool]] = []
    for scope in scopes:
        parts: list[ColumnElement[bool]] = []
        if scope.modalities:
            other = series.alias("scope_modality")
            wanted = func.upper(other.c.modality).in_(sorted(scope.modalities))
            parts.append(exists().where(other.c.study_pk == studies.c.pk, wanted))
        if scope.departments:
            other = series.alias("scope_department")
            department = other.c.attributes[(DEPARTMENT, "Value", 0)].as_string()
            wanted = func.upper(department).in_(sorted(scope.departments))
            parts.append(exists().where(other.c.study_pk == studies.c.pk, wanted))
        alternatives.append(and_(*parts) if parts else true())
    return or_(*alternatives) if alternatives else false()


def _computed(part: Part, value: Any) -> DataElement:
    if part.vr == "CS" and isinstance(value, str) and "\\" in value:  # ModalitiesInStudy
        return DataElement(part.tag, part.vr, [m for m in value.split("\\") if m])
    return DataElement(part.tag, part.vr, value if value not in (None, "") else None)


def _from_json(tag: int, stored: dict[str, Any]) -> DataElement:
    for key in JSON_VALUE_KEYS:
        if key in stored:
            return DataElement.from_json(Dataset, f"{tag:08X}", stored["vr"], stored[key], key)
    return DataElement.from_json(Dataset, f"{tag:08X}", stored["vr"], [""], None)


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _ascii(ds: Dataset) -> bool:
    for element in ds:
        if element.VR in TEXT_VRS and element.value is not None and not str(element.value).isascii():
            return False
        if element.VR == "SQ" and not all(_ascii(item) for item in element.value):
            return False
    return True


def describe(level: Level, identifier: Dataset) -> str:
    """For debug logs: the keys of a request, never their values (patient data)."""
    names = [keyword_for_tag(e.tag) or str(e.tag) for e in identifier]
    return f"{level} keys={','.join(names)}"
