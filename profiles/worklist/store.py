"""The worklist on the engine's database: orders applied, Modality Worklist C-FIND answered (PS3.4 K.6.1).

Matching follows the archive's C-FIND (:mod:`profiles.dicom.matching`: single
value, wildcard, date and time ranges, UID lists, case-insensitive person
names) on the keys PS3.4 K.6.1.2.2 names for a worklist: Scheduled Station AE
Title, Modality, Scheduled Procedure Step Start Date and Time (each on its
own), Scheduled Performing Physician's Name, Scheduled Procedure Step ID and
Status, Patient's Name, Patient ID, Accession Number, Requested Procedure ID
and Study Instance UID. Any other key is a return key only.

Without a Scheduled Procedure Step Status in the request, completed and
discontinued steps are left out: a modality's worklist shows what is still to
do. Every answer is UTF-8 (Specific Character Set ``ISO_IR 192``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from sqlalchemy import ColumnElement, Engine, and_, false, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError

from esb.errors import DicomError
from esb.security.users import Scope
from profiles.dicom.attributes import norm_time, pn_key
from profiles.dicom.matching import Kind, condition, query_values
from profiles.worklist.orders import Order, Step
from profiles.worklist.performed import PerformedSteps, with_status
from profiles.worklist.schema import COMPLETED, DISCONTINUED, SCHEDULED, items

#: top-level matching keys: keyword -> (column, kind)
TOP_KEYS: dict[str, tuple[str, Kind]] = {
    "PatientName": ("patient_name_key", "pn"), "PatientID": ("patient_id", "text"),
    "AccessionNumber": ("accession_number", "text"), "RequestedProcedureID": ("requested_procedure_id", "text"),
    "StudyInstanceUID": ("study_uid", "uid"),
}  # fmt: skip
#: matching keys inside the Scheduled Procedure Step Sequence
STEP_KEYS: dict[str, tuple[str, Kind]] = {
    "ScheduledStationAETitle": ("station_ae", "text"),
    "Modality": ("modality", "text"),
    "ScheduledProcedureStepStartDate": ("start_date", "date"),
    "ScheduledProcedureStepStartTime": ("start_time", "time"),
    "ScheduledPerformingPhysicianName": ("performing_physician", "pn"),
    "ScheduledProcedureStepID": ("sps_id", "text"),
    "ScheduledProcedureStepStatus": ("status", "text"),
}
MAX_MATCHES = 1000
FAILED_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000


def item_dataset(order: Order, step: Step, status: str) -> Dataset:
    """The whole worklist item as answered (PS3.4 Table K.6-1), before return-key filtering."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.AccessionNumber = step.accession_number
    ds.ReferringPhysicianName = order.referring_physician
    ds.PatientName = order.patient.name
    ds.PatientID = order.patient.patient_id
    ds.IssuerOfPatientID = order.patient.issuer
    ds.PatientBirthDate = order.patient.birth_date
    ds.PatientSex = order.patient.sex
    ds.StudyInstanceUID = step.study_uid
    ds.RequestedProcedureID = step.requested_procedure_id
    ds.RequestedProcedureDescription = step.description
    code_value, scheme, meaning = step.procedure_code
    if code_value:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = code_value, scheme or "L", meaning
        ds.RequestedProcedureCodeSequence = DicomSequence([code])
    sps = Dataset()
    sps.ScheduledStationAETitle = step.station_ae
    sps.ScheduledProcedureStepStartDate = step.start_date
    sps.ScheduledProcedureStepStartTime = step.start_time
    sps.Modality = step.modality
    sps.ScheduledPerformingPhysicianName = step.performing_physician
    sps.ScheduledProcedureStepDescription = step.description
    sps.ScheduledStationName = step.station_name
    sps.ScheduledProcedureStepLocation = step.location
    sps.ScheduledProcedureStepID = step.sps_id
    sps.ScheduledProcedureStepStatus = status
    ds.ScheduledProcedureStepSequence = DicomSequence([sps])
    return ds


def row_values(order: Order, step: Step, status: str, now: dt.datetime) -> dict[str, Any]:
    """The table row of one step (without ``created_at``), as an order writes it."""
    return {
        "accession_number": step.accession_number, "sps_id": step.sps_id,
        "requested_procedure_id": step.requested_procedure_id, "study_uid": step.study_uid,
        "patient_id": order.patient.patient_id, "issuer": order.patient.issuer,
        "patient_name": order.patient.name, "patient_name_key": pn_key(order.patient.name),
        "modality": step.modality, "station_ae": step.station_ae, "start_date": step.start_date,
        "start_time": norm_time(step.start_time) if step.start_time else "",
        "performing_physician": pn_key(step.performing_physician), "status": status,
        "placer_order": order.placer_order, "filler_order": order.filler_order,
        "attributes": item_dataset(order, step, status).to_json_dict(), "updated_at": now,
    }  # fmt: skip


class Worklist:
    def __init__(self, engine: Engine, clock: Any = lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None)) -> None:
        self.engine = engine
        self.clock = clock
        #: the MPPS side (RAD-6, RAD-7), whose statuses carry over to the items
        self.performed = PerformedSteps(engine, clock)

    def apply(self, order: Order) -> int:
        """Write (NW, XO) or change the status of (CA, DC, SC) the order's steps; the rows touched."""
        now = self.clock()
        touched = 0
        with self.engine.begin() as conn:
            for step in order.steps:
                key = and_(items.c.accession_number == step.accession_number, items.c.sps_id == step.sps_id)
                if order.status and order.control not in ("NW", "XO"):
                    row = conn.execute(select(items.c.attributes).where(key)).first()
                    if row is None:
                        continue  # a status for a step never scheduled here: nothing to show
                    attributes = with_status(row.attributes, order.status)
                    conn.execute(update(items).where(key).values(status=order.status, attributes=attributes,
                                                                  updated_at=now))  # fmt: skip
                    touched += 1
                    continue
                values = row_values(order, step, SCHEDULED, now)
                if conn.execute(update(items).where(key).values(**values)).rowcount == 0:
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(items).values(**values, created_at=now))
                    except IntegrityError:  # another node inserted the same step meanwhile: this one is newer
                        conn.execute(update(items).where(key).values(**values))
                touched += 1
        return touched

    def find(self, identifier: Dataset, *, scope: Sequence[Scope] | None = None) -> Iterator[Dataset]:
        """One answer per matching item, with the request's return keys (PS3.4 K.6.1.2).

        ``scope`` (a scoped grant, :func:`esb.authz.authorize_caller`): only items of an allowed
        modality. Worklist items carry no department, so a scope that names departments allows none.
        """
        conditions = self._conditions(identifier)
        if scope is not None:
            conditions.append(_in_scope(scope))
        query = select(items.c.attributes).where(*conditions).order_by(items.c.start_date, items.c.start_time)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(MAX_MATCHES)).all()
        for row in rows:
            yield answer(identifier, row.attributes)

    def _conditions(self, identifier: Dataset) -> list[ColumnElement[bool]]:
        dialect = self.engine.dialect.name
        out: list[ColumnElement[bool]] = []
        for keyword, (column, kind) in TOP_KEYS.items():
            found = condition(items.c[column], kind, query_values(identifier.get(keyword)), dialect)
            if found is not None:
                out.append(found)
        steps = identifier.get("ScheduledProcedureStepSequence")
        if steps is not None and len(steps) > 1:
            raise DicomError("a request's Scheduled Procedure Step Sequence holds one item", status=FAILED_MATCH)
        step = steps[0] if steps else Dataset()
        for keyword, (column, kind) in STEP_KEYS.items():
            values = query_values(step.get(keyword))
            if kind == "pn":
                values = [pn_key(v) for v in values]
            found = condition(items.c[column], kind, values, dialect)
            if found is not None:
                out.append(found)
        if not query_values(step.get("ScheduledProcedureStepStatus")):
            out.append(items.c.status.not_in((COMPLETED, DISCONTINUED)))
        return out


def answer(identifier: Dataset, item: dict[str, Any], *, top: bool = True) -> Dataset:
    """The request's keys with the item's values (empty where it has none); nested for the step sequence.

    ``item`` is the stored DICOM JSON: only the requested elements are made into data
    elements (reading the whole item with ``Dataset.from_json`` took most of an answer's time).
    """
    out = Dataset()
    if top:
        out.SpecificCharacterSet = "ISO_IR 192"
    for element in identifier:
        if element.keyword in ("SpecificCharacterSet", ""):
            continue
        key = f"{element.tag:08X}"
        stored = item.get(key)
        if element.VR == "SQ":
            out.add_new(element.tag, "SQ", _sequence(element.value, (stored or {}).get("Value") or []))
        elif stored is not None:
            out[element.tag] = DataElement.from_json(Dataset, key, stored["vr"], stored.get("Value"), "Value")
        else:
            out.add_new(element.tag, element.VR, None)
    return out


def _sequence(requested: Any, stored: list[dict[str, Any]]) -> DicomSequence:
    if not requested:
        return DicomSequence([Dataset.from_json(i) for i in stored])  # zero-length request: the whole sequence
    if not stored:
        return DicomSequence([])
    return DicomSequence([answer(requested[0], stored[0], top=False)])


def _in_scope(scopes: Sequence[Scope]) -> ColumnElement[bool]:
    alternatives: list[ColumnElement[bool]] = []
    for scope in scopes:
        if scope.departments:
            continue  # no department on a worklist item: nothing it could be checked against
        alternatives.append(items.c.modality.in_(sorted(scope.modalities)) if scope.modalities else true())
    return or_(*alternatives) if alternatives else false()
