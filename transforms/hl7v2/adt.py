"""Patient Identity Feed (ITI-8) and Patient Identity Management (ITI-30) messages as feed events.

One ADT message becomes one :class:`FeedEvent`; what the EMPI does with it
(create or update, merge, link) is the EMPI's business, this only reads:

=============================  ========  ==========================================
trigger                        kind      what else is read
=============================  ========  ==========================================
A01 A04 A05 (ITI-8), A28       register  PID, NK1 (mother)
A08 (ITI-8), A31 (ITI-30)      update    PID, NK1 (mother)
A40 (ITI-8, ITI-30 Merge)      merge     PID = survivor, MRG-1 = prior identifiers
A24 (ITI-30 Link/Unlink)       link      the first PID and the second PID
A37 (ITI-30 Link/Unlink)       unlink    the first PID and the second PID
A23 A29                        delete    PID
=============================  ========  ==========================================

The event time is EVN-2 (recorded date/time), else MSH-7; the sending system
is MSH-3^MSH-4. Both are copied into the record (``event_time``, ``source``)
for stale-update checks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from esb.errors import Hl7Error
from profiles.empi.model import Identifier, PatientRecord
from transforms.hl7v2.codec import Segment, V2Message
from transforms.hl7v2.pid import DEFAULT_OPTIONS, PidOptions, pid_segment, read_identifiers, read_pid

__all__ = ["FEED_TRIGGERS", "FeedEvent", "FeedKind", "parse_feed", "pid_segment"]

FeedKind = Literal["register", "update", "merge", "link", "unlink", "delete"]

FEED_TRIGGERS: dict[str, FeedKind] = {
    "A01": "register",
    "A04": "register",
    "A05": "register",
    "A28": "register",
    "A08": "update",
    "A31": "update",
    "A40": "merge",
    "A24": "link",
    "A37": "unlink",
    "A23": "delete",
    "A29": "delete",
}


@dataclass(frozen=True)
class FeedEvent:
    """What one ADT message says about one patient (and, for A24/A37, a second one)."""

    kind: FeedKind
    #: the trigger event (A01, A40, ...)
    trigger: str
    record: PatientRecord
    #: A40: the identifiers in MRG-1 that are retired into ``record``'s patient
    prior_identifiers: tuple[Identifier, ...] = ()
    #: A24/A37: the second patient to link to or unlink from ``record``'s patient
    other: PatientRecord | None = None
    #: MSH-3^MSH-4 by namespace IDs
    sending_system: str = ""
    #: MSH-10, for duplicate detection and the ACK
    message_control_id: str = ""
    #: EVN-2, else MSH-7 (HL7 TS as sent)
    event_time: str = ""
    #: MSH-12
    version: str = ""


def parse_feed(
    message: str | bytes | V2Message, *, options: PidOptions = DEFAULT_OPTIONS, encoding: str | None = None
) -> FeedEvent:
    """Read an ITI-8/ITI-30 ADT message; a message the EMPI must refuse raises :class:`Hl7Error`.

    ``encoding`` decodes bytes; without it MSH-18 decides (UTF-8 when absent).
    """
    msg = message if isinstance(message, V2Message) else V2Message(message, encoding)
    header = msg.header
    evn = msg.first("EVN")
    trigger = header.trigger or (evn.value(1).strip().upper() if evn is not None else "")
    # v2.3 senders may leave MSH-9.2 empty and name the trigger in EVN-1 only
    replace(header, trigger_event=trigger).expect("ADT", tuple(FEED_TRIGGERS))
    kind = FEED_TRIGGERS[trigger]
    event_time = (evn.value(2).strip() if evn is not None else "") or msg.segments[0].value(7).strip()
    pids = msg.all("PID")
    if not pids:
        raise Hl7Error(f"ADT^{trigger} needs a PID segment", error_code="100", location="PID")

    def stamp(record: PatientRecord) -> PatientRecord:
        return replace(record, source=header.sending_system, event_time=event_time)

    other: PatientRecord | None = None
    prior: tuple[Identifier, ...] = ()
    if kind in ("link", "unlink"):
        if len(pids) < 2:
            raise Hl7Error(
                f"ADT^{trigger} needs two PID segments, the patients to {kind}", error_code="100", location="PID^2"
            )
        record = read_pid(pids[0], options=options)
        other = stamp(read_pid(pids[1], options=options))
    elif kind == "merge":
        record, prior = _merge(msg, pids, trigger, options)
    else:
        record = read_pid(pids[0], nk1=msg.all("NK1"), options=options)
    return FeedEvent(
        kind=kind,
        trigger=trigger,
        record=stamp(record),
        prior_identifiers=prior,
        other=other,
        sending_system=header.sending_system,
        message_control_id=msg.segments[0].value(10),
        event_time=event_time,
        version=header.version or "2.5",
    )


def _merge(
    msg: V2Message, pids: list[Segment], trigger: str, options: PidOptions
) -> tuple[PatientRecord, tuple[Identifier, ...]]:
    """The survivor (PID) and the prior identifiers (MRG-1); IHE allows one patient group per A40."""
    mrgs = msg.all("MRG")
    if not mrgs:
        raise Hl7Error(f"ADT^{trigger} needs an MRG segment, the patient merged away", error_code="100", location="MRG")
    if len(pids) > 1 or len(mrgs) > 1:
        raise Hl7Error(
            f"ADT^{trigger} must carry one PID/MRG group (IHE ITI-8/ITI-30), got {len(pids)} PID and {len(mrgs)} MRG",
            error_code="100",
            location=f"MRG^{min(len(mrgs), 2)}" if len(mrgs) > 1 else "PID^2",
        )
    mrg = mrgs[0]
    prior, national = read_identifiers(mrg, 1, options)
    if not prior:
        what = "a national ID, which is not a cross-referenced identifier" if national else "nothing"
        raise Hl7Error(
            f"MRG-1 prior patient identifier list must hold an identifier with its authority (got {what})",
            error_code="101",
            location=mrg.location(1),
        )
    return read_pid(pids[0], nk1=msg.all("NK1"), options=options), tuple(prior)
