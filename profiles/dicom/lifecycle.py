"""A study's life in the archive: received -> complete -> archived, and what publishers need to know of it.

``complete`` is decided by time: no new instance for ``study_complete_after``.
Several engine nodes may run the timer at once; each study is flipped by a
conditional UPDATE, so exactly one node reports it complete. The XDS-I
publisher then builds the study's KOS and, once it is registered, sets the
study ``archived`` (only if it is still ``complete``: an instance that came in
meanwhile put it back to ``received`` and the study will be complete again).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pydicom.dataset import Dataset
from sqlalchemy import Connection, Engine, select, update

from profiles.dicom.empi_link import master_patient
from profiles.dicom.schema import ARCHIVED, COMPLETE, RECEIVED, patients, studies

STATUSES = (RECEIVED, COMPLETE, ARCHIVED)
#: studies flipped per call: a backlog drains over a few timer ticks instead of one long transaction
BATCH = 500


@dataclass(frozen=True)
class StudyInfo:
    """A study as the XDS-I publisher and the collection jobs see it."""

    study_uid: str
    patient_id: str
    issuer: str
    issuer_uid: str
    #: the EMPI master ID (person) of the patient, resolved now; None when the EMPI does not know it
    master_id: str | None
    status: str
    num_series: int
    num_instances: int
    modalities: tuple[str, ...]
    updated_at: dt.datetime
    completed_at: dt.datetime | None
    #: patient and study attributes as received (PatientName, StudyDate, AccessionNumber, ...)
    attributes: Dataset


def complete_studies(engine: Engine, cutoff: dt.datetime, now: dt.datetime) -> list[str]:
    """Mark ``received`` studies without an instance since ``cutoff`` complete; their UIDs (this caller's only)."""
    with engine.connect() as conn:
        due = conn.execute(
            select(studies.c.pk, studies.c.study_uid)
            .where(studies.c.status == RECEIVED, studies.c.updated_at <= cutoff)
            .order_by(studies.c.updated_at)
            .limit(BATCH)
        ).all()
    done: list[str] = []
    if not due:
        return done
    with engine.begin() as conn:
        for row in due:
            result = conn.execute(
                update(studies)
                .where(studies.c.pk == row.pk, studies.c.status == RECEIVED, studies.c.updated_at <= cutoff)
                .values(status=COMPLETE, completed_at=now)
            )
            if result.rowcount == 1:
                done.append(row.study_uid)
    return done


def set_status(engine: Engine, study_uid: str, status: str, *, expected: str | None = None) -> bool:
    """Set the study's status (only from ``expected`` when given); False when nothing changed."""
    if status not in STATUSES:
        raise ValueError(f"study status must be one of {'|'.join(STATUSES)} (got {status!r})")
    statement = update(studies).where(studies.c.study_uid == study_uid)
    if expected is not None:
        statement = statement.where(studies.c.status == expected)
    with engine.begin() as conn:
        return conn.execute(statement.values(status=status)).rowcount == 1


def studies_with_status(engine: Engine, status: str, *, limit: int = BATCH) -> list[str]:
    """Study UIDs in ``status``, the longest waiting first (a publisher's retry list)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(studies.c.study_uid).where(studies.c.status == status).order_by(studies.c.updated_at).limit(limit)
        )
        return [r.study_uid for r in rows]


def study_info(conn: Connection, study_uid: str) -> StudyInfo | None:
    row = conn.execute(
        select(
            studies,
            patients.c.patient_id,
            patients.c.issuer,
            patients.c.issuer_uid,
            patients.c.attributes.label("patient_attributes"),
        )
        .join(patients, patients.c.pk == studies.c.patient_pk)
        .where(studies.c.study_uid == study_uid)
    ).first()
    if row is None:
        return None
    attributes = Dataset.from_json({**row.patient_attributes, **row.attributes})
    master = master_patient(conn, row.patient_id, row.issuer_uid or row.issuer)
    if master is None and row.issuer_uid and row.issuer:
        master = master_patient(conn, row.patient_id, row.issuer)
    return StudyInfo(
        study_uid=row.study_uid,
        patient_id=row.patient_id,
        issuer=row.issuer,
        issuer_uid=row.issuer_uid,
        master_id=master,
        status=row.status,
        num_series=row.num_series,
        num_instances=row.num_instances,
        modalities=tuple(m for m in row.modalities.split("\\") if m),
        updated_at=row.updated_at,
        completed_at=row.completed_at,
        attributes=attributes,
    )
