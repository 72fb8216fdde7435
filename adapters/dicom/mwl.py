"""Modality Worklist C-FIND SCP (PS3.4 K.6.1, IHE RAD-5 Query Modality Worklist), answered from the worklist.

Like the archive's C-FIND, a query is answered at once in the association's
thread, not journaled: :class:`profiles.worklist.store.Worklist` matches the
request and fills its return keys. A request the worklist cannot match (two
step items, an unreadable identifier) is answered 0xA900; a database failure
0xC000, logged by type only (its text would quote patient data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from adapters.dicom.contexts import MWL_FIND
from esb.errors import DicomError

log = logging.getLogger("esb.adapters.dicom")

PENDING, CANCEL, SUCCESS = 0xFF00, 0xFE00, 0x0000
IDENTIFIER_DOES_NOT_MATCH, UNABLE_TO_PROCESS = 0xA900, 0xC000


class WorklistApi(Protocol):
    def find(self, identifier: Dataset) -> Iterator[Dataset]: ...


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
            for match in self.worklist().find(identifier):
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
