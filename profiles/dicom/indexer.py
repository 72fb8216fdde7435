"""Indexing one instance: patient, study, series and instance rows and their counts, in the caller's transaction.

Rows are taken top-down (patient, study, series, instance) and locked
(``FOR UPDATE``) so concurrent stores into one study queue instead of losing
a count, and never deadlock. On SQLite the caller holds the write lock from
the start (``BEGIN IMMEDIATE``), which serializes the same way. Two stores
that create the same new row race on its unique key: the loser gets an
IntegrityError and the caller runs the whole transaction again.

Counts go up by SQL expressions (``n = n + 1``) and a study that gets an
instance goes back to ``received``: a changed study needs a new KOS.

This is the ingest hot path (every C-STORE and STOW-RS instance), so the
statements are built once, with bound parameters, and SQLAlchemy finds them
compiled in its cache; the locking reads take only the columns used; and a
level whose values the instance does not change (every instance of a series
after the first) gets only its counts and timestamps updated, not its
attributes rewritten. What a level's values are computed from (its
attributes, as DICOM JSON) is the same for every instance of a series, so
the values are remembered per level by the raw bytes they came from: the
second instance of a series costs a lookup there, not a conversion.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import Connection, Table, bindparam, insert, select, update

from esb.errors import DicomError
from profiles.dicom.api import InstanceRef, Level, Stored
from profiles.dicom.attributes import KEYWORDS, instance_columns, patient_columns, series_columns, study_columns
from profiles.dicom.header import DOES_NOT_MATCH, Header
from profiles.dicom.schema import NEARLINE, ONLINE, RECEIVED, instances, patients, series, studies


@dataclass(frozen=True)
class Blob:
    """What the instance row says about its bytes (storage_key None: known only, on-demand)."""

    storage_key: str | None
    size: int = 0
    sha1: str | None = None
    expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class Indexed:
    stored: Stored
    #: the replaced copy's blob, to delete once the transaction committed
    old_key: str | None


#: the columns a level's values set (what :mod:`profiles.dicom.attributes` computes), compared before rewriting
PATIENT_COLUMNS = ("issuer_uid", "name_upper", "birth_date", "sex", "attributes")
STUDY_COLUMNS = ("study_date", "study_time", "accession", "study_id", "description", "referring_upper", "attributes")
SERIES_COLUMNS = (
    "modality", "series_number", "description", "body_part", "series_date", "pps_start_date", "pps_start_time",
    "attributes",
)  # fmt: skip


def _columns(table: Table, names: tuple[str, ...]) -> list[Any]:
    return [table.c[name] for name in names]


_LOCK_PATIENT = (
    select(patients.c.pk, *_columns(patients, PATIENT_COLUMNS))
    .where(patients.c.patient_id == bindparam("b_patient_id"), patients.c.issuer == bindparam("b_issuer"))
    .with_for_update()
)
_LOCK_STUDY = (
    select(
        studies.c.pk, studies.c.patient_pk, studies.c.modalities, studies.c.num_series, studies.c.num_instances,
        *_columns(studies, STUDY_COLUMNS),
    )
    .where(studies.c.study_uid == bindparam("b_uid"))
    .with_for_update()
)  # fmt: skip
_LOCK_SERIES = (
    select(series.c.pk, series.c.study_pk, *_columns(series, SERIES_COLUMNS))
    .where(series.c.series_uid == bindparam("b_uid"))
    .with_for_update()
)
_LOCK_INSTANCE = (
    select(
        instances.c.pk, instances.c.series_pk, instances.c.storage_key, instances.c.size, instances.c.transfer_syntax
    )
    .where(instances.c.sop_uid == bindparam("b_uid"))
    .with_for_update()
)
_INSERT = {table.name: insert(table) for table in (patients, studies, series, instances)}
_UPDATE_INSTANCE = update(instances).where(instances.c.pk == bindparam("b_pk"))


def _counting(table: Table, counts: tuple[str, ...], fixed: tuple[str, ...], values: tuple[str, ...]) -> Any:
    """``UPDATE table SET count = count + :b_count..., fixed = :fixed..., values... WHERE pk = :b_pk``."""
    assignments: dict[str, Any] = {name: table.c[name] + bindparam(f"b_{name}") for name in counts}
    assignments.update({name: bindparam(f"b_{name}") for name in (*fixed, *values)})
    return update(table).where(table.c.pk == bindparam("b_pk")).values(assignments)


_PATIENT_COUNTS = ("num_studies", "num_series", "num_instances")
_STUDY_COUNTS = ("num_series", "num_instances", "size")
_STUDY_FIXED = ("modalities", "status", "completed_at", "updated_at")
#: each level's update: counts only (values unchanged), or counts and the level's values
_UPDATES = {
    (patients.name, False): _counting(patients, _PATIENT_COUNTS, ("updated_at",), ()),
    (patients.name, True): _counting(patients, _PATIENT_COUNTS, ("updated_at",), PATIENT_COLUMNS),
    (studies.name, False): _counting(studies, _STUDY_COUNTS, _STUDY_FIXED, ()),
    (studies.name, True): _counting(studies, _STUDY_COUNTS, _STUDY_FIXED, STUDY_COLUMNS),
    (series.name, False): _counting(series, ("num_instances",), ("updated_at",), ()),
    (series.name, True): _counting(series, ("num_instances",), ("updated_at",), SERIES_COLUMNS),
}


#: each level's tags; a level's values are computed from these (and the character set) only
_LEVEL_TAGS: dict[Level, tuple[int, ...]] = {
    level: tuple(int(tag) for keyword in keywords if (tag := tag_for_keyword(keyword)) is not None)
    for level, keywords in KEYWORDS.items()
}
SPECIFIC_CHARACTER_SET = 0x00080005
#: level values remembered, by level and the raw bytes they came from; emptied when full
_REMEMBERED: dict[tuple[Any, ...], dict[str, Any]] = {}
REMEMBER = 256


def _fingerprint(ds: Dataset, level: Level) -> tuple[Any, ...] | None:
    """The raw bytes the level's values come from; None when some are not raw bytes (then nothing is remembered)."""
    charset = ds.original_character_set  # what pydicom decodes the raw text with
    parts: list[Any] = [
        level,
        getattr(ds, "original_encoding", None),
        tuple(charset) if isinstance(charset, list) else charset,
    ]
    for tag in (SPECIFIC_CHARACTER_SET, *_LEVEL_TAGS[level]):
        element = ds.get_item(tag, keep_deferred=True)
        if element is None:
            parts.append(None)
        elif isinstance(element, RawDataElement):
            if not isinstance(element.value, bytes):  # deferred: a value too large for an index anyway
                return None
            parts.append((tag, element.VR, element.value))
        else:  # converted already (the character set, the UIDs read to identify the instance)
            value = element.value
            if isinstance(value, MultiValue | list):
                value = tuple(value)
            if not all(isinstance(v, str | int | float) for v in (value if isinstance(value, tuple) else (value,))):
                return None  # a sequence, a person name object, bytes...
            parts.append((tag, element.VR, "value", value))
    return tuple(parts)


def _level_values(ds: Dataset, level: Level, compute: Callable[[Dataset], dict[str, Any]]) -> dict[str, Any]:
    """``compute(ds)``, or what it gave for the same raw bytes before (a series' instances share them)."""
    key = _fingerprint(ds, level)
    if key is None:
        return compute(ds)
    found = _REMEMBERED.get(key)
    if found is None:
        found = compute(ds)
        if len(_REMEMBERED) >= REMEMBER:
            _REMEMBERED.clear()
        _REMEMBERED[key] = found
    return dict(found)


def _insert(conn: Connection, table: Table, values: dict[str, Any]) -> int:
    key = conn.execute(_INSERT[table.name], values).inserted_primary_key
    assert key is not None
    return int(key[0])


def _changed(row: Any, values: dict[str, Any], names: tuple[str, ...]) -> bool:
    """Whether ``values`` differ from the row's (a JSON column compares as the decoded document)."""
    return any(getattr(row, name) != values[name] for name in names)


def _update(conn: Connection, table: Table, pk: int, row: Any, values: dict[str, Any], names: tuple[str, ...],
            changes: dict[str, Any]) -> None:  # fmt: skip
    rewrite = _changed(row, values, names)
    params = {f"b_{name}": value for name, value in changes.items()}
    if rewrite:
        params.update({f"b_{name}": values[name] for name in names})
    conn.execute(_UPDATES[(table.name, rewrite)], {"b_pk": pk, **params})


class Restart(Exception):
    """The one-statement lookup locked rows of another family than the instance's: roll back, take them one by one."""


class _Part:
    """One table's columns of a joined row (``p_``, ``st_``, ``se_`` labels), read as attributes."""

    def __init__(self, row: Any, prefix: str) -> None:
        self._row, self._prefix = row._mapping, prefix

    def __getattr__(self, name: str) -> Any:
        return self._row[self._prefix + name]


_LOCK_FAMILY = (
    select(
        *(patients.c[n].label(f"p_{n}") for n in ("pk", "patient_id", "issuer", *PATIENT_COLUMNS)),
        *(studies.c[n].label(f"st_{n}") for n in ("pk", "study_uid", "patient_pk", "modalities", "num_series",
                                                   "num_instances", *STUDY_COLUMNS)),
        *(series.c[n].label(f"se_{n}") for n in ("pk", "study_pk", *SERIES_COLUMNS)),
    )
    .select_from(
        patients.join(studies, studies.c.patient_pk == patients.c.pk).join(series, series.c.study_pk == studies.c.pk)
    )
    .where(series.c.series_uid == bindparam("b_uid"))
    .with_for_update()
)  # fmt: skip


@dataclass
class _Family:
    """The instance's patient, study and series rows, locked; a row None is one this store inserted."""

    patient: Any
    patient_pk: int
    study: Any
    study_pk: int
    series: Any
    series_pk: int


def _known_family(conn: Connection, header: Header, patient_values: dict[str, Any]) -> _Family | None:
    """The family of an instance of a series already indexed, in one statement (every instance after the first).

    PostgreSQL locks the rows of a ``SELECT ... FOR UPDATE`` over a join in
    the order of its FROM clause: patient, study, series, the order every
    store takes them in. None when the series is new (nothing locked);
    :class:`Restart` when it belongs elsewhere than the header says (a
    corrected Patient ID, a series moved): that case takes the rows one by
    one, from a new transaction.
    """
    row = conn.execute(_LOCK_FAMILY, {"b_uid": header.series_uid}).first()
    if row is None:
        return None
    patient, study, series_row = _Part(row, "p_"), _Part(row, "st_"), _Part(row, "se_")
    same = (patient.patient_id, patient.issuer) == (patient_values["patient_id"], patient_values["issuer"])
    if not same or study.study_uid != header.study_uid:
        raise Restart()
    return _Family(patient, patient.pk, study, study.pk, series_row, series_row.pk)


def _family(conn: Connection, header: Header, values: dict[Level, dict[str, Any]], now: dt.datetime) -> _Family:
    """Patient, study and series rows taken (and locked) top-down, each inserted when missing."""
    counts = {"num_series": 0, "num_instances": 0}
    patient_values = values["PATIENT"]
    patient = conn.execute(
        _LOCK_PATIENT, {"b_patient_id": patient_values["patient_id"], "b_issuer": patient_values["issuer"]}
    ).first()
    if patient is None:
        patient_pk = _insert(
            conn, patients, {**patient_values, "num_studies": 0, **counts, "created_at": now, "updated_at": now}
        )
    else:
        patient_pk = patient.pk

    study = conn.execute(_LOCK_STUDY, {"b_uid": header.study_uid}).first()
    if study is None:
        row = {**values["STUDY"], "patient_pk": patient_pk, "study_uid": header.study_uid, "modalities": ""}
        study_pk = _insert(
            conn, studies, {**row, **counts, "size": 0, "status": RECEIVED, "created_at": now, "updated_at": now}
        )
    else:
        study_pk = study.pk
        if study.patient_pk != patient_pk:
            _move_study(conn, study, patient_pk)

    series_row = conn.execute(_LOCK_SERIES, {"b_uid": header.series_uid}).first()
    if series_row is None:
        row = {**values["SERIES"], "study_pk": study_pk, "series_uid": header.series_uid}
        series_pk = _insert(conn, series, {**row, "num_instances": 0, "created_at": now, "updated_at": now})
    else:
        series_pk = series_row.pk
        if series_row.study_pk != study_pk:
            raise DicomError("the series belongs to another study", status=DOES_NOT_MATCH)
    return _Family(patient, patient_pk, study, study_pk, series_row, series_pk)


def index_instance(
    conn: Connection,
    header: Header,
    blob: Blob,
    *,
    now: dt.datetime,
    calling_ae: str = "",
    source: str = "",
    keep_stored: bool = False,
    quick: bool = True,
) -> Indexed:
    """Index ``header``'s instance with ``blob``; ``keep_stored``: an instance already kept is left as it is.

    ``quick`` looks the family up in one statement first (:func:`_known_family`);
    the caller runs the transaction again with ``quick=False`` on :class:`Restart`.
    """
    ds = header.dataset
    values: dict[Level, dict[str, Any]] = {
        "PATIENT": _level_values(ds, "PATIENT", patient_columns),
        "STUDY": _level_values(ds, "STUDY", study_columns),
        "SERIES": _level_values(ds, "SERIES", series_columns),
    }
    family = _known_family(conn, header, values["PATIENT"]) if quick else None
    if family is None:
        family = _family(conn, header, values, now)
    new_study, new_series = family.study is None, family.series is None
    series_pk = family.series_pk

    existing = conn.execute(_LOCK_INSTANCE, {"b_uid": header.sop_instance_uid}).first()
    if existing is not None and existing.series_pk != series_pk:
        raise DicomError("the SOP instance is already stored in another series", status=DOES_NOT_MATCH)
    if existing is not None and keep_stored and existing.storage_key is not None:
        return Indexed(
            Stored(_ref(header, existing.size, existing.storage_key, existing.transfer_syntax), False, False), None
        )
    row = {
        **instance_columns(ds),
        "sop_class_uid": header.sop_class_uid,
        "transfer_syntax": header.transfer_syntax,
        "storage_key": blob.storage_key,
        "size": blob.size,
        "sha1": blob.sha1,
        "availability": ONLINE if blob.storage_key else NEARLINE,
        "source": source[:1000],
        "calling_ae": calling_ae[:16],
        "expires_at": blob.expires_at,
        "updated_at": now,
    }
    old_size = 0
    if existing is None:
        _insert(conn, instances, {**row, "series_pk": series_pk, "sop_uid": header.sop_instance_uid, "created_at": now})
    else:
        old_size = existing.size
        conn.execute(_UPDATE_INSTANCE.values(**row), {"b_pk": existing.pk})

    new_instance = existing is None
    added = int(new_instance)
    # A row inserted above holds the values already: its update only counts.
    _update(conn, series, series_pk, family.series, values["SERIES"], SERIES_COLUMNS if not new_series else (),
            {"num_instances": added, "updated_at": now})  # fmt: skip
    modalities = "" if family.study is None else family.study.modalities
    modality = str(ds.get("Modality") or "").strip()[:16]
    if modality and modality not in modalities.split("\\"):
        modalities = "\\".join(sorted({*modalities.split("\\"), modality} - {""}))[:200]
    study_changes = {
        "num_series": int(new_series), "num_instances": added, "size": blob.size - old_size,
        "modalities": modalities, "status": RECEIVED, "completed_at": None, "updated_at": now,
    }  # fmt: skip
    _update(conn, studies, family.study_pk, family.study, values["STUDY"], STUDY_COLUMNS if not new_study else (),
            study_changes)  # fmt: skip
    patient_changes = {
        "num_studies": int(new_study), "num_series": int(new_series), "num_instances": added, "updated_at": now,
    }  # fmt: skip
    _update(conn, patients, family.patient_pk, family.patient, values["PATIENT"],
            PATIENT_COLUMNS if family.patient is not None else (), patient_changes)  # fmt: skip
    old_key = existing.storage_key if existing is not None and existing.storage_key != blob.storage_key else None
    stored = Stored(_ref(header, blob.size, blob.storage_key, header.transfer_syntax), new_instance, new_study)
    return Indexed(stored, old_key)


def _move_study(conn: Connection, study: Any, patient_pk: int) -> None:
    """The study now belongs to another patient (its Patient ID was corrected): move its counts along."""
    for pk, sign in ((study.patient_pk, -1), (patient_pk, 1)):
        conn.execute(
            update(patients)
            .where(patients.c.pk == pk)
            .values(
                num_studies=patients.c.num_studies + sign,
                num_series=patients.c.num_series + sign * study.num_series,
                num_instances=patients.c.num_instances + sign * study.num_instances,
            )
        )
    conn.execute(update(studies).where(studies.c.pk == study.pk).values(patient_pk=patient_pk))


def _ref(header: Header, size: int, key: str | None, syntax: str) -> InstanceRef:
    return InstanceRef(
        study_uid=header.study_uid,
        series_uid=header.series_uid,
        sop_instance_uid=header.sop_instance_uid,
        sop_class_uid=header.sop_class_uid,
        transfer_syntax=syntax,
        size=size,
        storage_key=key,
    )
