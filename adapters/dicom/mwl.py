"""Modality Worklist C-FIND SCP (PS3.4 K.6.1, IHE RAD-5) and Modality Performed Procedure Step SCP (PS3.4 F.7,
RAD-6/RAD-7), answered from the worklist.

Like the archive's C-FIND, a query is answered at once in the association's
thread, not journaled: :class:`profiles.worklist.store.Worklist` matches the
request and fills its return keys. A request the worklist cannot match (two
step items, an unreadable identifier) is answered 0xA900; a database failure
0xC000, logged by type only (its text would quote patient data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.events import Event

from adapters.dicom.contexts import MWL_FIND
from adapters.dicom.qr import granted_scope
from esb.errors import DicomError
from esb.security.users import Scope
from profiles.dicom import audit

log = logging.getLogger("esb.adapters.dicom")

PENDING, CANCEL, SUCCESS = 0xFF00, 0xFE00, 0x0000
IDENTIFIER_DOES_NOT_MATCH, UNABLE_TO_PROCESS, PROCESSING_FAILURE = 0xA900, 0xC000, 0x0110


class PerformedApi(Protocol):
    def create(self, sop_uid: str, attributes: Dataset) -> None: ...

    def set(self, sop_uid: str, modification: Dataset) -> Dataset: ...


class WorklistApi(Protocol):
    performed: PerformedApi

    def find(self, identifier: Dataset, *, scope: Sequence[Scope] | None = None) -> Iterator[Dataset]: ...


class ModalityWorklist:
    def __init__(self, route_id: str, worklist: Callable[[], WorklistApi]) -> None:
        self.route_id, self.worklist = route_id, worklist

    def find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        try:
            try:
                identifier = event.identifier
            except Exception as exc:
                raise DicomError(f"the identifier cannot be read: {type(exc).__name__}",
                                 status=IDENTIFIER_DOES_NOT_MATCH) from None  # fmt: skip
            audit.queried(event)  # ATNA Query (DICOM Query), as for the archive's C-FIND
            worklist = self.worklist()
            scope = granted_scope(event, "dicom.query", worklist)  # as for the archive's C-FIND (A2.6)
            for match in worklist.find(identifier, **scope):
                if event.is_cancelled:
                    yield CANCEL, None
                    return
                yield PENDING, match
        except DicomError as exc:
            log.info("route %s: worklist C-FIND answered 0x%04X: %s", self.route_id, exc.status, exc.text)
            yield exc.status, None
        except Exception as exc:
            log.error("route %s: worklist C-FIND failed: %s", self.route_id, type(exc).__name__)
            log.debug("route %s: worklist C-FIND failure", self.route_id, exc_info=exc)
            yield UNABLE_TO_PROCESS, None


def dispatching_find(
    worklist: ModalityWorklist, other: Callable[[Event], Iterator[Any]] | None
) -> Callable[[Event], Iterator[Any]]:
    """One EVT_C_FIND handler (pynetdicom takes one): worklist requests here, the rest to the archive's."""

    def find(event: Event) -> Iterator[Any]:
        if str(event.context.abstract_syntax) == MWL_FIND:
            return worklist.find(event)
        if other is None:
            return iter([(UNABLE_TO_PROCESS, None)])
        return other(event)

    return find


class PerformedStepScp:
    """N-CREATE / N-SET of Modality Performed Procedure Step; the worklist keeps them and updates its items."""

    def __init__(self, route_id: str, worklist: Callable[[], WorklistApi]) -> None:
        self.route_id, self.worklist = route_id, worklist

    def create(self, event: Event) -> tuple[int, Dataset | None]:
        request: Any = event.request
        sop_uid = str(request.AffectedSOPInstanceUID or "") or str(generate_uid())
        try:
            self.worklist().performed.create(sop_uid, event.attribute_list)
        except Exception as exc:
            return self._refused("N-CREATE", exc), None
        log.info("route %s: MPPS %s created", self.route_id, sop_uid)
        if request.AffectedSOPInstanceUID:
            return SUCCESS, None
        made = Dataset()
        made.AffectedSOPInstanceUID = sop_uid  # pynetdicom moves it into the response
        return SUCCESS, made

    def set(self, event: Event) -> tuple[int, Dataset | None]:
        request: Any = event.request
        sop_uid = str(request.RequestedSOPInstanceUID or "")
        try:
            updated = self.worklist().performed.set(sop_uid, event.modification_list)
        except Exception as exc:
            return self._refused("N-SET", exc), None
        log.info("route %s: MPPS %s set %s", self.route_id, sop_uid, updated.get("PerformedProcedureStepStatus", ""))
        return SUCCESS, updated

    def _refused(self, what: str, exc: Exception) -> int:
        if isinstance(exc, DicomError):
            log.info("route %s: MPPS %s answered 0x%04X: %s", self.route_id, what, exc.status, exc.text)
            return exc.status
        log.error("route %s: MPPS %s failed: %s", self.route_id, what, type(exc).__name__)
        log.debug("route %s: MPPS %s failure", self.route_id, what, exc_info=exc)
        return PROCESSING_FAILURE

    def handlers(self) -> list[tuple[Any, Callable[..., Any]]]:
        return [(evt.EVT_N_CREATE, self.create), (evt.EVT_N_SET, self.set)]
