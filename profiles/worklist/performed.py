"""Modality Performed Procedure Step SCP (PS3.4 F.7; IHE RAD-6 In Progress, RAD-7 Completed/Discontinued).

A modality creates the MPPS (N-CREATE, status IN PROGRESS) when it starts an
exam and sets it COMPLETED or DISCONTINUED (N-SET) when done. The object is
kept whole, and its status goes to the worklist items its Scheduled Step
Attributes Sequence names (accession number and step ID): started,
completed, discontinued, so a finished exam leaves the other modalities'
worklists too. An unscheduled exam (no accession number) is kept as it came.

Refusals are N-CREATE/N-SET statuses (PS3.4 F.7.2.1.2, F.7.2.2.2): 0x0111 the
SOP instance exists, 0x0112 no such SOP instance (N-SET), 0x0120 a required
attribute is missing, 0x0106 a status that is not IN PROGRESS at creation or
not one of the three, 0x0110 an MPPS that is already COMPLETED or
DISCONTINUED (it may no longer be updated).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Engine, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from esb.errors import DicomError
from profiles.dicom.attributes import text
from profiles.worklist.schema import (
    COMPLETED,
    DISCONTINUED,
    IN_PROGRESS,
    PERFORMED_COMPLETED,
    PERFORMED_DISCONTINUED,
    STARTED,
    items,
    performed,
)

DUPLICATE, NO_SUCH_INSTANCE, MISSING, INVALID_VALUE, PROCESSING_FAILURE = 0x0111, 0x0112, 0x0120, 0x0106, 0x0110
FINAL = (PERFORMED_COMPLETED, PERFORMED_DISCONTINUED)
#: MPPS status -> the Scheduled Procedure Step Status of the items it names
ITEM_STATUS = {IN_PROGRESS: STARTED, PERFORMED_COMPLETED: COMPLETED, PERFORMED_DISCONTINUED: DISCONTINUED}


class PerformedSteps:
    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime]) -> None:
        self.engine, self.clock = engine, clock

    def create(self, sop_uid: str, attributes: Dataset) -> None:
        """RAD-6: a new MPPS, IN PROGRESS; :class:`DicomError` with the status to answer otherwise."""
        status = str(attributes.get("PerformedProcedureStepStatus", "") or "").strip()
        if not status:
            raise DicomError("Performed Procedure Step Status (0040,0252) is missing", status=MISSING)
        if status != IN_PROGRESS:
            raise DicomError(f"an MPPS is created IN PROGRESS (got '{status[:16]}')", status=INVALID_VALUE)
        if "ScheduledStepAttributesSequence" not in attributes:
            raise DicomError("Scheduled Step Attributes Sequence (0040,0270) is missing", status=MISSING)
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(performed).values(
                    sop_uid=sop_uid, status=status, station_ae=text(attributes, "PerformedStationAETitle", 16),
                    modality=text(attributes, "Modality", 16), accession_numbers=_accessions(attributes),
                    attributes=attributes.to_json_dict(), created_at=now, updated_at=now,
                ))  # fmt: skip
                self._carry(conn, attributes, status, now)
        except IntegrityError:
            raise DicomError(f"MPPS {sop_uid} exists already", status=DUPLICATE) from None

    def set(self, sop_uid: str, modification: Dataset) -> Dataset:
        """RAD-7: the modification applied (while IN PROGRESS); the whole MPPS after it."""
        with self.engine.begin() as conn:
            row = conn.execute(select(performed).where(performed.c.sop_uid == sop_uid).with_for_update()).first()
            if row is None:
                raise DicomError(f"no MPPS {sop_uid}", status=NO_SUCH_INSTANCE)
            if row.status in FINAL:
                raise DicomError(f"MPPS {sop_uid} is {row.status} and may no longer be updated",
                                 status=PROCESSING_FAILURE)  # fmt: skip
            stored = Dataset.from_json(row.attributes)
            for element in modification:
                stored[element.tag] = element
            status = str(stored.get("PerformedProcedureStepStatus", "") or "").strip()
            if status not in ITEM_STATUS:
                raise DicomError(f"Performed Procedure Step Status '{status[:16]}' is not IN PROGRESS, COMPLETED or "
                                 "DISCONTINUED", status=INVALID_VALUE)  # fmt: skip
            now = self.clock()
            conn.execute(update(performed).where(performed.c.sop_uid == sop_uid).values(
                status=status, attributes=stored.to_json_dict(), updated_at=now,
            ))  # fmt: skip
            self._carry(conn, stored, status, now)
        return stored

    @staticmethod
    def _carry(conn: Any, attributes: Dataset, status: str, now: dt.datetime) -> None:
        """The MPPS's status onto the worklist items it was performed for."""
        keys = []
        for step in attributes.get("ScheduledStepAttributesSequence", []):
            accession = text(step, "AccessionNumber", 16)
            sps_id = text(step, "ScheduledProcedureStepID", 16)
            if accession:
                match = items.c.accession_number == accession
                keys.append(and_(match, items.c.sps_id == sps_id) if sps_id else match)
        if not keys:
            return
        new = ITEM_STATUS[status]
        rows = conn.execute(select(items.c.pk, items.c.attributes).where(or_(*keys))).all()
        for row in rows:
            conn.execute(update(items).where(items.c.pk == row.pk).values(
                status=new, attributes=with_status(row.attributes, new), updated_at=now))  # fmt: skip


def with_status(attributes: dict[str, Any], status: str) -> dict[str, Any]:
    """A worklist item's DICOM JSON with its Scheduled Procedure Step Status set."""
    ds = Dataset.from_json(attributes)
    for sps in ds.get("ScheduledProcedureStepSequence", []):
        sps.ScheduledProcedureStepStatus = status
    return ds.to_json_dict()


def _accessions(ds: Dataset) -> str:
    found = [text(step, "AccessionNumber", 16) for step in ds.get("ScheduledStepAttributesSequence", [])]
    return "\\".join(a for a in found if a)[:200]
