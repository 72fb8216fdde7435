"""What the EMPI tells the world (A1.12): one event per change, for listeners and ITI-10."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from profiles.empi.model import Identifier, PatientRecord

EventKind = Literal["registered", "updated", "merged", "linked", "unlinked", "deleted"]
EVENT_KINDS: tuple[EventKind, ...] = ("registered", "updated", "merged", "linked", "unlinked", "deleted")


@dataclass(frozen=True)
class EmpiEvent:
    kind: EventKind
    person_id: str | None
    #: the patient the event is about (its identifier in its own domain)
    patient: Identifier
    #: every identifier of the person now (master ID first), for ITI-10 and listeners
    identifiers: tuple[Identifier, ...]
    record: PatientRecord
    #: for merges: the retired identifier; for link/unlink: the other patient
    other: Identifier | None = None
    #: persons whose membership changed besides person_id (split-offs, merges)
    affected_persons: tuple[str, ...] = field(default=())
