"""Helpers for the XDS-I.b tests: studies on disk, EMPI links for their patients, KOS reading."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from profiles.empi.schema import domains
from profiles.empi.schema import patients as empi_patients
from tests.dicom_support import MR, series
from tests.xds import samples

#: the local patient domain the studies' Issuer of Patient ID names
HIS_NAMESPACE = "HIS1"
HIS_OID = "1.2.156.112.9999.7.1"


def study(directory: Path, *, patient_id: str = "P0001", ct: int = 3, mr: int = 2, accession: str = "ACC1") -> str:
    """A study of a CT series (``ct`` instances) and an MR series (``mr``) as Part 10 files; its Study UID."""
    study_uid = generate_uid()
    series(directory / "ct", ct, patient_id=patient_id, study_uid=study_uid, accession=accession, modality="CT")
    if mr:
        series(directory / "mr", mr, patient_id=patient_id, study_uid=study_uid, accession=accession, source=MR)
    return study_uid


def files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.dcm"))


def link_patient(engine: sa.Engine, local_id: str = "P0001", *, namespace: str = HIS_NAMESPACE) -> str:
    """Make ``local_id`` in the HIS domain a patient of a new active EMPI person; returns the person (master) ID."""
    cx = samples.add_patient(engine)
    person = cx.split("^", 1)[0]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        if conn.execute(sa.select(domains.c.key).where(domains.c.key == HIS_OID)).first() is None:
            conn.execute(
                sa.insert(domains).values(
                    key=HIS_OID,
                    namespace=namespace,
                    universal_id=HIS_OID,
                    universal_id_type="ISO",
                    kind="local",
                    description=None,
                    auto_registered=False,
                    created_at=now,
                )
            )
        conn.execute(
            sa.insert(empi_patients).values(
                id=uuid.uuid4().hex,
                domain_key=HIS_OID,
                local_id=local_id,
                person_id=person,
                link_kind="manual",
                link_weight=None,
                status="active",
                merged_into=None,
                record={},
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
    return person


def read_dicom(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


def evidence_uids(kos: Dataset) -> dict[str, list[str]]:
    """{series UID: [SOP instance UIDs]} of the KOS's Current Requested Procedure Evidence Sequence."""
    [study_item] = kos.CurrentRequestedProcedureEvidenceSequence
    return {
        str(s.SeriesInstanceUID): [str(r.ReferencedSOPInstanceUID) for r in s.ReferencedSOPSequence]
        for s in study_item.ReferencedSeriesSequence
    }


def slot_values(entry: Any, name: str) -> list[str]:
    for slot in entry.iter("{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}Slot"):
        if slot.get("name") == name:
            return [str(v.text) for v in slot.iter("{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}Value")]
    return []
