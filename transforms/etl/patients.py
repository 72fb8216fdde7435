"""A HIS patient row -> HL7 v2 ADT^A04 (new) or ADT^A08 (changed) for ``service:empi/feed``.

Use in a route after ``from: etl:...`` (or ``table:``)::

    - transform:
        python: transforms.etl.patients:to_adt
        params: {authority: "HIS1&1.2.156.112.1.1&ISO", id: PAT_NO, name: XM, sex: XB, birth_date: CSRQ}
    - to: service:empi/feed

Every ``params`` key is optional; column names default to the usual English
ones (``patient_no``, ``name``, ``sex``, ``birth_date``, ``id_card``, ``phone``,
``address``, ``updated_at``, ``created_at``). The EMPI standardizes the record
itself (names split, codes mapped with the sender's code maps, phones and
resident IDs checked); this mapping only does what the HL7 message cannot
carry as the HIS wrote it:

- sex codes (1/2, 男/女, M/F, GB/T 2261.1) become HL7 0001 through the EMPI's
  code maps (shipped sets plus the deployment's ``code_maps``) for the sending
  system; a code nothing maps is sent as it is, for the EMPI to judge;
- birth dates in any spelling the EMPI reads (1980-05-06, 1980/5/6,
  1980年5月6日, 19800506, a year alone) become an HL7 partial date; one that is
  no possible birth date raises, so the row is rejected with that reason;
- the row's ``updated_at`` (else the job's watermark) becomes EVN-2, which the
  EMPI compares to refuse an older version of a patient than it holds.

A row without its patient number raises too (the EMPI keys patients by it).
The trigger is A08 when the row was changed after it was created
(``updated_at`` after ``created_at``), else A04; ``trigger`` forces one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import lru_cache

from esb.errors import TransformError
from esb.exchange import Exchange
from profiles.empi.model import Address, Domain, Identifier, PatientRecord, PersonName
from profiles.empi.standardize import dates
from profiles.empi.standardize.codes import CodeMaps
from transforms.etl.rows import Row, row_of
from transforms.hl7v2.encoding import escape
from transforms.hl7v2.pid import pid_segment
from transforms.hl7v2.writer import msh, now_ts, render

#: params -> default column name
COLUMNS = {
    "id": "patient_no",
    "name": "name",
    "sex": "sex",
    "birth_date": "birth_date",
    "id_card": "id_card",
    "phone": "phone",
    "address": "address",
    "updated": "updated_at",
    "created": "created_at",
}
#: other params and their defaults
SETTINGS = {
    "authority": "HIS",  # PID-3 assigning authority: NAMESPACE, NAMESPACE&OID&ISO or &OID&ISO
    "id_type": "PI",  # PID-3 identifier type code (HL7 0203): PI patient internal identifier
    "sending_application": "ETL",  # MSH-3
    "sending_facility": "",  # MSH-4; default: the authority's namespace
    "receiving_application": "EMPI",  # MSH-5
    "trigger": "auto",  # auto | A04 | A08
}
HL7_CONTENT_TYPE = "x-application/hl7-v2+er7"


@lru_cache(maxsize=1)
def code_maps() -> CodeMaps:
    """The EMPI's code maps as the deployment configures them (config/empi.yaml ``code_maps``)."""
    from profiles.empi.config import load_empi_config

    return CodeMaps.load(load_empi_config().code_maps)


def domain(text: str) -> Domain:
    """``HIS1``, ``HIS1&1.2.3&ISO`` or ``&1.2.3&ISO`` as an assigning authority."""
    parts = [*text.split("&"), "", "", ""]
    namespace, oid, kind = (p.strip() for p in parts[:3])
    return Domain(namespace, oid, kind or ("ISO" if oid else ""))


def hl7_time(text: str) -> str:
    """An ISO 8601 date or timestamp as HL7 TS (offset kept when given); '' for anything else."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return ""
    return moment.strftime("%Y%m%d%H%M%S") + moment.strftime("%z")


def options(params: dict[str, str] | None) -> dict[str, str]:
    given = dict(params or {})
    unknown = sorted(set(given) - set(COLUMNS) - set(SETTINGS))
    if unknown:
        known = ", ".join([*COLUMNS, *SETTINGS])
        raise TransformError(f"transforms.etl.patients: unknown params {', '.join(unknown)} (known: {known})")
    return {**COLUMNS, **SETTINGS, **given}


def record_of(row: Row, p: dict[str, str], system: str) -> PatientRecord:
    """The patient the row describes, as the EMPI's feed would read it back from PID."""
    patient_no = row.required(p["id"], "the patient number")
    born = row.text(p["birth_date"])
    birth_date = ""
    if born:
        parsed = dates.parse(born)
        if parsed is None:
            raise TransformError(
                f"{row.what}: column '{p['birth_date']}' is not a possible birth date "
                "(a date like 1980-05-06 or 19800506, not in the future, not before 1850)"
            )
        birth_date = parsed.hl7
    raw_sex = row.text(p["sex"])
    sex = (code_maps().map(system, "sex", raw_sex) or raw_sex) if raw_sex else ""
    name = row.text(p["name"])
    phone = row.text(p["phone"])
    address = row.text(p["address"])
    return PatientRecord(
        identifiers=(Identifier(patient_no, domain(p["authority"]), p["id_type"]),),
        names=(PersonName(family=name),) if name else (),
        sex=sex,
        birth_date=birth_date,
        phones=(phone,) if phone else (),
        addresses=(Address(street=address),) if address else (),
        national_id=row.text(p["id_card"]),
    )


def trigger_of(row: Row, p: dict[str, str]) -> str:
    wanted = p["trigger"].upper()
    if wanted in ("A04", "A08"):
        return wanted
    if wanted != "AUTO":
        raise TransformError(f"transforms.etl.patients: trigger must be auto, A04 or A08 (got '{p['trigger']}')")
    created, updated = hl7_time(row.text(p["created"])), hl7_time(row.text(p["updated"]))
    return "A08" if created and updated and updated[:14] > created[:14] else "A04"


def control_id(exchange: Exchange, patient_no: str, event_time: str) -> str:
    """MSH-10 derived from the row's version, so a re-run sends the same message (20 hex digits fit ST)."""
    basis = exchange.headers.get("etl-job", "") + "\x00" + patient_no + "\x00" + event_time
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:20]


def to_adt(exchange: Exchange, params: dict[str, str] | None = None) -> str:
    """The ADT^A04/A08 for the patient row in ``exchange`` (see the module doc for ``params``)."""
    p = options(params)
    row = Row(row_of(exchange), "patient row")
    authority = domain(p["authority"])
    facility = p["sending_facility"] or authority.namespace
    system = f"{p['sending_application']}^{facility}" if facility else p["sending_application"]
    record = record_of(row, p, system)
    trigger = trigger_of(row, p)
    event_time = hl7_time(row.text(p["updated"])) or hl7_time(exchange.headers.get("etl-watermark", "")) or now_ts()
    patient_no = record.identifiers[0].value
    segments = [
        msh(
            sending_application=_hd(p["sending_application"]),
            sending_facility=_hd(facility),
            receiving_application=_hd(p["receiving_application"]),
            receiving_facility="",
            message_type=f"ADT^{trigger}^ADT_A01",
            control_id=control_id(exchange, patient_no, event_time),
        ),
        render("EVN", [trigger, event_time]),
        pid_segment(record, set_id="1"),
        render("PV1", ["1", "N"]),
    ]
    exchange.headers["content-type"] = HL7_CONTENT_TYPE
    exchange.headers["hl7-message-type"] = f"ADT^{trigger}"
    return "\r".join(segments) + "\r"


def _hd(text: str) -> str:
    """An HD value as wire text: ``^`` separates its components, anything else is escaped."""
    return "^".join(escape(part) for part in text.split("^"))
