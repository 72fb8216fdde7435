"""DICOM Instances Transferred, one event per study per association or request (PS3.15 A.5.3.7).

A C-STORE association brings hundreds of instances, at ~120 a second: an
event per instance would multiply the audit volume by that and put work on
the storage path. So the receiving side only counts, per association and
study, instances by SOP class (a dict update under a lock, no I/O), and the
events are made when the association closes, one per study, and, following
PS3.15 A.5.2 ("one message for successful actions and one for the failed
actions"), a second one for the instances refused. Outgoing transfers
(C-MOVE, C-GET, WADO, RAD-69) use the same counting per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from esb.audit import emit, events
from esb.audit.events import Party
from esb.audit.model import Action, Outcome, SopClassCount


def dicom_patient(patient_id: str, issuer: str = "") -> str:
    """PatientID with its Issuer of Patient ID in CX form (``id^^^issuer``), or the bare ID."""
    patient_id, issuer = patient_id.strip(), issuer.strip()
    return f"{patient_id}^^^{issuer}" if issuer and patient_id else patient_id


@dataclass
class _Study:
    patient_id: str = ""
    ok: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)


class StudyTransfers:
    """The instances of one association or request between two parties, counted by study and SOP class."""

    def __init__(
        self,
        *,
        action: Action,
        source: Party,
        destination: Party,
        requestor: str = "source",
        other: Party | None = None,
        transaction: str | None = None,
        human: str | None = None,
    ) -> None:
        self.action, self.source, self.destination = action, source, destination
        self.requestor, self.other, self.transaction, self.human = requestor, other, transaction, human
        self.studies: dict[str, _Study] = {}

    def add(self, study_uid: str, patient_id: str, sop_class: str, ok: bool = True) -> None:
        study = self.studies.get(study_uid)
        if study is None:
            study = self.studies[study_uid] = _Study(patient_id)
        elif not study.patient_id:
            study.patient_id = patient_id
        counts = study.ok if ok else study.failed
        counts[sop_class] = counts.get(sop_class, 0) + 1

    def emit(self) -> None:
        """The events: per study, one for the instances transferred and one for those that failed."""
        studies, self.studies = self.studies, {}
        for uid, study in studies.items():
            results: tuple[tuple[dict[str, int], Outcome], ...] = ((study.ok, 0), (study.failed, 4))
            for counts, outcome in results:
                if not counts:
                    continue
                failed = f"{sum(counts.values())} instance(s) not transferred"
                emit(events.dicom_instances_transferred(
                    action=self.action, source=self.source, destination=self.destination, study_uid=uid,
                    patient_id=study.patient_id, sop_classes=[SopClassCount(k, n) for k, n in sorted(counts.items())],
                    requestor=self.requestor, other=self.other, transaction=self.transaction, outcome=outcome,
                    human=self.human, description=None if outcome == 0 else failed,
                ))  # fmt: skip


class AssociationTransfers:
    """Per association (any hashable key): a :class:`StudyTransfers` made at the first instance, emitted at close.

    Thread-safe: pynetdicom runs each association in a thread of its own.
    """

    def __init__(self, action: Action = "C") -> None:
        self.action = action
        self._lock = threading.Lock()
        self._open: dict[Hashable, StudyTransfers] = {}

    def add(self, key: Hashable, parties: Callable[[], tuple[Party, Party]], study_uid: str, patient_id: str,
            sop_class: str, ok: bool) -> None:  # fmt: skip
        """Count one instance; ``parties`` (source, destination) is called for the association's first only."""
        with self._lock:
            transfers = self._open.get(key)
            if transfers is None:
                source, destination = parties()
                transfers = self._open[key] = StudyTransfers(action=self.action, source=source, destination=destination)
            transfers.add(study_uid, patient_id, sop_class, ok)

    def close(self, key: Hashable) -> None:
        with self._lock:
            transfers = self._open.pop(key, None)
        if transfers is not None:
            transfers.emit()

    def close_all(self) -> None:
        with self._lock:
            left, self._open = list(self._open.values()), {}
        for transfers in left:
            transfers.emit()

    @property
    def open(self) -> int:
        return len(self._open)
