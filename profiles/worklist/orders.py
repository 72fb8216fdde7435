"""HL7 v2 orders (IHE RAD-4 Procedure Scheduled) read into worklist items.

Two forms are taken, as IHE SWF allows them:

- ``OMI^O23`` (HL7 2.5.1): one IPC segment per Scheduled Procedure Step:
  IPC-1 Accession Number, IPC-2 Requested Procedure ID, IPC-3 Study Instance
  UID, IPC-4 Scheduled Procedure Step ID, IPC-5 Modality, IPC-7 Scheduled
  Station Name, IPC-8 Scheduled Procedure Step Location, IPC-9 Scheduled
  Station AE Title; the start from TQ1-7.
- ``ORM^O01`` (HL7 2.3.1): one step per OBR: OBR-18 Accession Number,
  OBR-19 Requested Procedure ID, OBR-20 Scheduled Procedure Step ID, OBR-24
  Modality, OBR-27.4 start, ZDS-1 Study Instance UID. 2.3.1 has no field for
  the station's AE title; OBR-21 (Filler Field 2) is read for it, as RIS
  products here commonly send it there.

ORC-1 says what happens: NW (new) and XO (changed) write the items, CA
(cancelled) and DC (discontinued) take them off the worklist, SC (status
changed) sets ORC-5: IP (started), CM (completed), CA/DC (discontinued), SC
(scheduled again). A missing Study Instance UID is derived from the
accession number (``2.25.`` + a name-based UUID), so a changed order keeps it.

The patient's name goes to DICOM as a PN with component groups: alphabetic
``=`` ideographic. A name sent in hanzi only (XPN-8 ``I``, or unmarked) gets
its pinyin as the alphabetic group (``WANG^XIAODONG=王^小东``), which is what
a modality's console can show (REQUIREMENTS B2.10).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from esb.errors import Hl7Error
from profiles.empi.model import PersonName
from profiles.empi.standardize.names import has_hanzi, pinyin
from profiles.worklist.schema import COMPLETED as DONE
from profiles.worklist.schema import DISCONTINUED, SCHEDULED, STARTED
from transforms.hl7v2.codec import Segment, V2Message
from transforms.hl7v2.pid import read_name

#: ORC-1 order controls and what they do to the items
WRITE, CANCEL, STATUS = ("NW", "XO"), ("CA", "DC", "OC", "OD"), ("SC",)
#: ORC-5 order status -> Scheduled Procedure Step Status
ORDER_STATUS = {"SC": SCHEDULED, "IP": STARTED, "CM": DONE, "CA": DISCONTINUED, "DC": DISCONTINUED}
UID_NAMESPACE = uuid.UUID("6f3c1b2e-4a57-4d1e-9a0c-52a1d3e8b7f4")


@dataclass(frozen=True)
class Step:
    """One Scheduled Procedure Step as the worklist keeps and answers it."""

    accession_number: str
    sps_id: str
    requested_procedure_id: str
    study_uid: str
    modality: str
    station_ae: str
    start_date: str
    start_time: str
    description: str = ""
    procedure_code: tuple[str, str, str] = ("", "", "")  # value, scheme, meaning
    station_name: str = ""
    location: str = ""
    performing_physician: str = ""


@dataclass(frozen=True)
class Patient:
    patient_id: str
    issuer: str
    name: str  # DICOM PN
    birth_date: str = ""
    sex: str = ""


@dataclass(frozen=True)
class Order:
    control: str
    #: the new Scheduled Procedure Step Status for SC and cancellations; "" when the items are written
    status: str
    placer_order: str
    filler_order: str
    patient: Patient
    referring_physician: str
    steps: tuple[Step, ...] = field(default=())


def parse_order(body: bytes) -> Order:
    """The order of an ORM^O01 or OMI^O23; :class:`Hl7Error` (answered AE/AR with ERR) when it cannot be used."""
    msg = V2Message(body)
    header = msg.header
    kind = f"{header.message_code}^{header.trigger_event}"
    if kind not in ("ORM^O01", "OMI^O23"):
        raise Hl7Error(f"{kind} is not an order this worklist takes (ORM^O01, OMI^O23)", error_code="200",
                       location="MSH^1^9", ack_code="AR")  # fmt: skip
    orc = msg.require("ORC", "an order needs its ORC segment")
    control = orc.value(1).strip().upper()
    if control not in (*WRITE, *CANCEL, *STATUS):
        raise Hl7Error(f"ORC-1 order control '{control}' is not one of NW, XO, CA, DC, SC", error_code="103",
                       location=orc.location(1))  # fmt: skip
    status = ""
    if control in CANCEL:
        status = DISCONTINUED
    elif control in STATUS:
        status = ORDER_STATUS.get(orc.value(5).strip().upper(), "")
        if not status:
            raise Hl7Error("ORC-5 order status must be one of SC, IP, CM, CA, DC", error_code="103",
                           location=orc.location(5))  # fmt: skip
    obr = msg.require("OBR", "an order needs its OBR segment")
    pid = msg.require("PID", "an order needs the patient's PID segment")
    pv1 = msg.first("PV1")
    steps = _omi_steps(msg, obr) if kind == "OMI^O23" else _orm_steps(msg)
    carriers = msg.all("IPC") if kind == "OMI^O23" else msg.all("OBR")
    for step, carrier in zip(steps, carriers, strict=True):
        if not step.accession_number:
            field_no = 1 if kind == "OMI^O23" else 18
            raise Hl7Error(f"{carrier.name}-{field_no} Accession Number is required", error_code="101",
                           location=carrier.location(field_no))  # fmt: skip
    return Order(
        control=control,
        status=status,
        placer_order=orc.value(2).strip() or obr.value(2).strip(),
        filler_order=orc.value(3).strip() or obr.value(3).strip(),
        patient=_patient(pid),
        referring_physician=_xcn_name(pv1, 8) if pv1 is not None else "",
        steps=tuple(steps),
    )


def _orm_steps(msg: V2Message) -> list[Step]:
    zds = msg.first("ZDS")
    study_uid = zds.value(1).strip() if zds is not None else ""
    steps: list[Step] = []
    for obr in msg.all("OBR"):
        accession = obr.value(18).strip()
        start = obr.value(27, comp=4).strip() or obr.value(36).strip()
        steps.append(_step(
            accession=accession, sps_id=obr.value(20).strip(), requested=obr.value(19).strip(),
            study_uid=study_uid, modality=obr.value(24).strip(), station_ae=obr.value(21).strip()[:16],
            start=start, obr=obr,
        ))  # fmt: skip
    return steps


def _omi_steps(msg: V2Message, obr: Segment) -> list[Step]:
    tq1 = msg.first("TQ1")
    start = (tq1.value(7).strip() if tq1 is not None else "") or obr.value(27, comp=4).strip()
    ipcs = msg.all("IPC")
    if not ipcs:
        raise Hl7Error("OMI^O23 needs an IPC segment per scheduled procedure step", error_code="100", location="IPC")
    return [
        _step(
            accession=ipc.value(1).strip(),
            sps_id=ipc.value(4).strip(),
            requested=ipc.value(2).strip(),
            study_uid=ipc.value(3).strip(),
            modality=ipc.value(5).strip(),
            station_ae=ipc.value(9).strip()[:16],
            start=start,
            obr=obr,
            station_name=ipc.value(7).strip(),
            location=ipc.value(8).strip(),
        )  # fmt: skip
        for ipc in ipcs
    ]


def _step(
    *, accession: str, sps_id: str, requested: str, study_uid: str, modality: str, station_ae: str, start: str,
    obr: Segment, station_name: str = "", location: str = "",
) -> Step:  # fmt: skip
    date, time = _start(start, obr)
    code = (obr.value(4, comp=1).strip(), obr.value(4, comp=3).strip(), obr.value(4, comp=2).strip())
    return Step(
        accession_number=accession[:16],
        sps_id=(sps_id or requested or accession)[:16],
        requested_procedure_id=(requested or accession)[:16],
        study_uid=study_uid or study_uid_for(accession),
        modality=modality.upper()[:16],
        station_ae=station_ae,
        start_date=date,
        start_time=time,
        description=code[2][:64],
        procedure_code=code,
        station_name=station_name[:16],
        location=location[:16],
        performing_physician=_xcn_name(obr, 34),
    )


def _start(text: str, obr: Segment) -> tuple[str, str]:
    """(YYYYMMDD, HHMMSS) of an HL7 TS; :class:`Hl7Error` when it is not one."""
    digits = text.split("+")[0].split("-")[0].split(".")[0]
    if not digits:
        return "", ""
    try:
        dt.datetime.strptime(digits[:8], "%Y%m%d")
    except ValueError:
        raise Hl7Error(f"the scheduled start '{text[:26]}' is not an HL7 date/time", error_code="102",
                       location=obr.location(27)) from None  # fmt: skip
    return digits[:8], digits[8:14]


def study_uid_for(accession: str) -> str:
    """A Study Instance UID that stays the same for one accession number (PS3.5 B.2: ``2.25.`` + UUID)."""
    return f"2.25.{uuid.uuid5(UID_NAMESPACE, accession).int}"


def _patient(pid: Segment) -> Patient:
    identifier = pid.value(3).strip()
    if not identifier:
        raise Hl7Error("PID-3 patient identifier is required", error_code="101", location=pid.location(3))
    issuer = pid.value(3, comp=4).strip()
    names = [read_name(rep) for rep in pid.reps(5)]
    return Patient(
        patient_id=identifier[:64],
        issuer=issuer[:64],
        name=dicom_name(names),
        birth_date=pid.value(7).strip()[:8],
        sex=pid.value(8).strip().upper()[:1],
    )


def dicom_name(names: Sequence[PersonName]) -> str:
    """PN ``alphabetic=ideographic`` from the XPN repetitions; pinyin made up for a hanzi-only name."""
    alphabetic = next((n for n in names if n.representation in ("", "A") and not _hanzi(n)), None)
    ideographic = next((n for n in names if n.representation == "I" or _hanzi(n)), None)
    if alphabetic is None and ideographic is not None:
        alphabetic = PersonName(
            family=pinyin(ideographic.family, surname=True).upper(), given=pinyin(ideographic.given).upper()
        )
    groups = [_pn(alphabetic) if alphabetic else ""]
    if ideographic is not None:
        groups.append(_pn(ideographic))
    return "=".join(groups).rstrip("=")


def _hanzi(name: PersonName) -> bool:
    return has_hanzi(name.family + name.given)


def _pn(name: PersonName) -> str:
    return "^".join((name.family, name.given, name.middle, name.prefix, name.suffix)).rstrip("^")


def _xcn_name(segment: Segment | None, n: int) -> str:
    """An XCN (id^family^given...) as PN family^given."""
    if segment is None:
        return ""
    family, given = segment.value(n, comp=2).strip(), segment.value(n, comp=3).strip()
    return "^".join((family, given)).rstrip("^")
