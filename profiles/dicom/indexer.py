"""Indexing one instance: patient, study, series and instance rows and their counts, in the caller's transaction.

Rows are taken top-down (patient, study, series, instance) and locked
(``FOR UPDATE``) so concurrent stores into one study queue instead of losing
a count, and never deadlock. On SQLite the caller holds the write lock from
the start (``BEGIN IMMEDIATE``), which serializes the same way. Two stores
that create the same new row race on its unique key: the loser gets an
IntegrityError and the caller runs the whole transaction again.

Counts go up by SQL expressions (``n = n + 1``) and a study that gets an
instance goes back to ``received``: a changed study needs a new KOS.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from esb.errors import DicomError
from profiles.dicom.api import InstanceRef, Stored
from profiles.dicom.attributes import instance_columns, patient_columns, series_columns, study_columns
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


def _locked(conn: Connection, table: Any, *where: Any) -> Any:
    return conn.execute(select(table).where(*where).with_for_update()).first()


def _insert(conn: Connection, table: Any, values: dict[str, Any]) -> int:
    key = conn.execute(insert(table).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def index_instance(
    conn: Connection,
    header: Header,
    blob: Blob,
    *,
    now: dt.datetime,
    calling_ae: str = "",
    source: str = "",
    keep_stored: bool = False,
) -> Indexed:
    """Index ``header``'s instance with ``blob``; ``keep_stored``: an instance already kept is left as it is."""
    ds = header.dataset
    counts = {"num_series": 0, "num_instances": 0}
    patient_values = patient_columns(ds)
    patient = _locked(
        conn,
        patients,
        patients.c.patient_id == patient_values["patient_id"],
        patients.c.issuer == patient_values["issuer"],
    )
    if patient is None:
        patient_pk = _insert(
            conn, patients, {**patient_values, "num_studies": 0, **counts, "created_at": now, "updated_at": now}
        )
    else:
        patient_pk = patient.pk

    study_values = study_columns(ds)
    study = _locked(conn, studies, studies.c.study_uid == header.study_uid)
    new_study = study is None
    if study is None:
        values = {**study_values, "patient_pk": patient_pk, "study_uid": header.study_uid, "modalities": ""}
        study_pk = _insert(
            conn, studies, {**values, **counts, "size": 0, "status": RECEIVED, "created_at": now, "updated_at": now}
        )
        modalities = ""
    else:
        study_pk, modalities = study.pk, study.modalities
        if study.patient_pk != patient_pk:
            _move_study(conn, study, patient_pk)

    series_values = series_columns(ds)
    row = _locked(conn, series, series.c.series_uid == header.series_uid)
    new_series = row is None
    if row is None:
        values = {**series_values, "study_pk": study_pk, "series_uid": header.series_uid}
        series_pk = _insert(conn, series, {**values, "num_instances": 0, "created_at": now, "updated_at": now})
    else:
        series_pk = row.pk
        if row.study_pk != study_pk:
            raise DicomError("the series belongs to another study", status=DOES_NOT_MATCH)

    existing = _locked(conn, instances, instances.c.sop_uid == header.sop_instance_uid)
    if existing is not None and existing.series_pk != series_pk:
        raise DicomError("the SOP instance is already stored in another series", status=DOES_NOT_MATCH)
    if existing is not None and keep_stored and existing.storage_key is not None:
        return Indexed(
            Stored(_ref(header, existing.size, existing.storage_key, existing.transfer_syntax), False, False), None
        )
    values = {
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
        _insert(
            conn, instances, {**values, "series_pk": series_pk, "sop_uid": header.sop_instance_uid, "created_at": now}
        )
    else:
        old_size = existing.size
        conn.execute(update(instances).where(instances.c.pk == existing.pk).values(**values))

    new_instance = existing is None
    added = int(new_instance)
    conn.execute(
        update(series)
        .where(series.c.pk == series_pk)
        .values(**series_values, num_instances=series.c.num_instances + added, updated_at=now)
    )
    modality = str(ds.get("Modality") or "").strip()[:16]
    if modality and modality not in modalities.split("\\"):
        modalities = "\\".join(sorted({*modalities.split("\\"), modality} - {""}))[:200]
    conn.execute(
        update(studies)
        .where(studies.c.pk == study_pk)
        .values(
            **study_values,
            modalities=modalities,
            num_series=studies.c.num_series + int(new_series),
            num_instances=studies.c.num_instances + added,
            size=studies.c.size + blob.size - old_size,
            status=RECEIVED,
            completed_at=None,
            updated_at=now,
        )  # fmt: skip
    )
    conn.execute(
        update(patients)
        .where(patients.c.pk == patient_pk)
        .values(
            **patient_values,
            num_studies=patients.c.num_studies + int(new_study),
            num_series=patients.c.num_series + int(new_series),
            num_instances=patients.c.num_instances + added,
            updated_at=now,
        )  # fmt: skip
    )
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
