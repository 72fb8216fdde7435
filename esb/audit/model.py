"""The audit message model: DICOM PS3.15 A.5.1 (RFC 3881's schema, as DICOM maintains it).

Plain frozen dataclasses that mirror the schema's parts, so that a factory in
:mod:`esb.audit.events` fills in exactly what the standard names and the XML
writer (:mod:`esb.audit.xml`) has nothing left to decide. An event is built
where it happens and may cross threads (pynetdicom's, the engine loop's), hence
immutable values only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Literal

#: EventActionCode: Create, Read, Update, Delete, Execute
Action = Literal["C", "R", "U", "D", "E"]
#: EventOutcomeIndicator: success, minor failure, serious failure, major failure
Outcome = Literal[0, 4, 8, 12]
SUCCESS: Outcome = 0
MINOR_FAILURE: Outcome = 4
SERIOUS_FAILURE: Outcome = 8
MAJOR_FAILURE: Outcome = 12
OUTCOMES: dict[str, Outcome] = {"success": 0, "minor": 4, "serious": 8, "major": 12}


@dataclass(frozen=True)
class Code:
    """A coded value (csd-code, codeSystemName, originalText: PS3.15 calls all three mandatory)."""

    code: str
    system: str
    meaning: str


@dataclass(frozen=True)
class Participant:
    """An ActiveParticipant: a person, a process or a node taking part in the event."""

    user_id: str
    requestor: bool
    roles: tuple[Code, ...] = ()
    alternative_user_id: str | None = None
    user_name: str | None = None
    #: host name or IP address; the type code follows from its form
    access_point: str | None = None

    @property
    def access_point_type(self) -> str | None:
        """NetworkAccessPointTypeCode: 2 for an IP address, 1 for a machine name."""
        if not self.access_point:
            return None
        try:
            ipaddress.ip_address(self.access_point)
        except ValueError:
            return "1"
        return "2"


@dataclass(frozen=True)
class Detail:
    """A ParticipantObjectDetail: a named value, sent base64-encoded."""

    type: str
    value: bytes


@dataclass(frozen=True)
class SopClassCount:
    """ParticipantObjectDescription/SOPClass: how many instances of one SOP class (and which)."""

    uid: str
    count: int
    instances: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParticipantObject:
    """A ParticipantObjectIdentification: a patient, a study, a document, a query...

    PS3.15 requires either ``name`` or ``query`` (CP-2399); when a factory has
    no name it repeats the identifier, which is what a reviewer would look for.
    """

    object_id: str
    id_type: Code
    #: ParticipantObjectTypeCode: 1 person, 2 system object, 3 organization, 4 other
    type_code: str | None = None
    #: ParticipantObjectTypeCodeRole: 1 patient, 3 report, 20 job, 24 query, ...
    role: str | None = None
    life_cycle: str | None = None
    name: str | None = None
    query: bytes | None = None
    details: tuple[Detail, ...] = ()
    sop_classes: tuple[SopClassCount, ...] = ()
    accessions: tuple[str, ...] = ()

    @property
    def is_patient(self) -> bool:
        return self.type_code == "1" and self.role == "1"


@dataclass(frozen=True)
class AuditSource:
    """AuditSourceIdentification: the node that reports (AuditSourceID) and its site."""

    source_id: str
    site_id: str | None = None
    #: AuditSourceTypeCode: 4 application server process
    type_codes: tuple[str, ...] = ("4",)


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AuditEvent:
    """One audit message, before the node that stores it adds its AuditSourceIdentification.

    ``record_id`` names the record from emit to the Audit Record Repository
    (the stored row and the syslog structured data carry it), so a record sent
    twice after a broken connection is recognisable as the same.
    """

    event_id: Code
    action: Action
    outcome: Outcome
    participants: tuple[Participant, ...]
    objects: tuple[ParticipantObject, ...] = ()
    type_codes: tuple[Code, ...] = ()
    outcome_description: str | None = None
    at: dt.datetime = field(default_factory=utcnow)
    record_id: str = field(default_factory=new_id)
    #: set for events a node reports about itself (application start); else the trail's own
    source: AuditSource | None = None

    @property
    def user(self) -> str:
        """Who asked: the first requestor's UserID, else the first participant's (for search)."""
        for participant in self.participants:
            if participant.requestor:
                return participant.user_id
        return self.participants[0].user_id if self.participants else ""

    @property
    def patient_ids(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for obj in self.objects:
            if obj.is_patient and obj.object_id:
                seen.setdefault(obj.object_id, None)
        return tuple(seen)

    @property
    def transaction(self) -> str:
        """The first event type code (``ITI-8``, ``110120``), for search and the report."""
        return self.type_codes[0].code if self.type_codes else ""
