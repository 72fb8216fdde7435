"""Storage Commitment Push Model SCP on the ``dicom:`` port: the N-ACTION side (PS3.4 J.3.2).

Like Query/Retrieve, this is answered from the archive in the association's
thread, not journaled as a message: the request is recorded in the archive's
database (:mod:`profiles.dicom.commitment`) and answered Success once that
row is committed; the N-EVENT-REPORT follows on an association of the
archive's own (:mod:`profiles.dicom.commitment_report`, the
``dicom-commitment`` timer route). A requester that is not one of
``remote_aes`` gets 0x0110 (processing failure, with an error comment): the
report would have nowhere to go.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event

from esb.errors import DicomError
from profiles.dicom.api import ArchiveApi
from profiles.dicom.commitment import NO_SUCH_INSTANCE, PROCESSING_FAILURE, PUSH_MODEL_INSTANCE, parse_request
from profiles.dicom.config import RemoteAe

log = logging.getLogger("esb.adapters.dicom")

Response = tuple[int | Dataset, Dataset | None]


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]  # LO
    return status


class CommitmentScp:
    def __init__(
        self, route_id: str, archive: Callable[[], ArchiveApi], remote: Callable[[str], RemoteAe | None]
    ) -> None:
        self.route_id, self.archive, self.remote = route_id, archive, remote

    def action(self, event: Event) -> Response:
        request: Any = event.request
        calling_ae = str(event.assoc.requestor.ae_title or "").strip()
        try:
            if str(request.RequestedSOPInstanceUID or "") != PUSH_MODEL_INSTANCE:
                raise DicomError(f"the SOP Instance is {PUSH_MODEL_INSTANCE}", status=NO_SUCH_INSTANCE)
            asked = parse_request(request.ActionTypeID, event.action_information)
            remote = self.remote(calling_ae)
            if remote is None:
                raise DicomError(f"{calling_ae} is not in remote_aes", status=PROCESSING_FAILURE)
            # remote_aes are keyed by AE title (config.py): the key the report is sent to later
            row = self.archive().record_commitment(asked, calling_ae=calling_ae, remote=remote.ae_title)
        except DicomError as exc:
            log.info("route %s: storage commitment from %s answered 0x%04X: %s", self.route_id, calling_ae,
                     exc.status, exc.text)  # fmt: skip
            return _status(exc.status, exc.text), None
        except Exception as exc:
            log.error("route %s: storage commitment from %s failed: %s", self.route_id, calling_ae,
                      type(exc).__name__)  # fmt: skip
            log.debug("route %s: storage commitment failure", self.route_id, exc_info=exc)
            return _status(PROCESSING_FAILURE, "the request could not be recorded"), None
        log.info("route %s: storage commitment %s from %s: %d instances, report to follow", self.route_id, row,
                 calling_ae, len(asked.references))  # fmt: skip
        return 0x0000, None

    def handlers(self) -> list[tuple[Any, Callable[..., Any]]]:
        return [(evt.EVT_N_ACTION, self.action)]
