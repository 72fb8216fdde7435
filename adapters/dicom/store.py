"""C-STORE: spool the received bytes, hand one exchange to the route, answer with its outcome.

pynetdicom calls :meth:`Receiver.__call__` in the association's thread; the
engine's handler is a coroutine on the engine loop, so the call crosses over
with ``run_coroutine_threadsafe`` and waits for the route (``wait=True``): the
status goes back only once the route is done (PS3.4 B.2.3):

- processed or filtered: 0x0000;
- failed with a :class:`~esb.errors.DicomError`: its status; a route's
  ``on_error: [reply: {status: "0xA700"}]`` picks one explicitly;
- not journaled, journal/storage/database trouble, the route too slow: 0xA700
  (out of resources: the sender should send again later);
- any other failure: 0xC000.

A data set that is not well formed is refused 0xC000 before it is journaled,
one whose SOP Instance UID differs from the command's 0xA900; the association
stays up for the next instance either way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import uuid
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.events import Event
from sqlalchemy.exc import DBAPIError

from adapters.dicom import dataset as encoded
from adapters.dicom.options import DicomOptions
from esb.audit.dicom import AssociationTransfers
from esb.components import Handler, Outcome
from esb.errors import DicomError, JournalError, StorageError
from esb.exchange import ATTACHMENTS_HEADER, Attachment, Exchange, attachments_header
from profiles.dicom import audit
from profiles.dicom.header import remember_header

log = logging.getLogger("esb.adapters.dicom")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
#: failures the sender should retry later rather than give up on
TRANSIENT = (JournalError, StorageError, OSError, DBAPIError, TimeoutError)


class Refused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class Peer:
    calling_ae: str
    called_ae: str
    address: str

    @classmethod
    def of(cls, event: Event) -> Peer:
        assoc = event.assoc
        host, port = assoc.requestor.address, assoc.requestor.port
        return cls(assoc.requestor.ae_title.strip(), assoc.acceptor.ae_title.strip(), f"{host}:{port}")


def status_of(outcome: Outcome) -> int:
    """The C-STORE status for the engine's outcome (see the module docstring)."""
    if outcome.message_id is None:
        return OUT_OF_RESOURCES
    if outcome.status != "failed":
        return SUCCESS
    wanted = outcome.reply.get("status")
    if wanted is not None:
        try:
            return int(str(wanted), 0)
        except ValueError:
            log.warning("on_error reply status '%s' is not a number (e.g. 0xA700); using the default", wanted)
    error = outcome.error
    if isinstance(error, DicomError):
        return error.status
    if isinstance(error, TRANSIENT):
        return OUT_OF_RESOURCES
    return CANNOT_UNDERSTAND


def exchange_headers(ds: Dataset, sop_class: str, sop_instance: str, syntax: str, peer: Peer) -> dict[str, str]:
    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        return str(value).strip() if value is not None else ""

    return {
        "content-type": "application/dicom+json",
        "dicom-calling-ae": peer.calling_ae,
        "dicom-called-ae": peer.called_ae,
        "dicom-peer": peer.address,
        "dicom-sop-class-uid": sop_class,
        "dicom-sop-instance-uid": sop_instance,
        "dicom-study-uid": text("StudyInstanceUID"),
        "dicom-series-uid": text("SeriesInstanceUID"),
        "dicom-modality": text("Modality"),
        "dicom-transfer-syntax": syntax,
        "dicom-patient-id": text("PatientID"),
    }


class Receiver:
    """The ``EVT_C_STORE`` handler of one consumer."""

    def __init__(
        self,
        options: DicomOptions,
        handler: Handler,
        route_id: str,
        spool_dir: Path,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.options, self.handler, self.route_id = options, handler, route_id
        self.spool_dir, self.loop = spool_dir, loop
        self.closing = False
        self._lock = threading.Lock()
        self._in_flight = 0
        #: instances counted per association for the audit trail (events when it closes)
        self.transfers = AssociationTransfers("C")

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def __call__(self, event: Event) -> int:
        with self._lock:  # counted before the check, so stop() cannot miss one that got past it
            self._in_flight += 1
        try:
            if self.closing:
                return OUT_OF_RESOURCES
            return self.store(event)
        except Exception as exc:  # never let pynetdicom answer for us
            log.error("route %s: C-STORE failed unexpectedly: %s", self.route_id, type(exc).__name__)
            log.debug("route %s: C-STORE failure", self.route_id, exc_info=exc)
            return CANNOT_UNDERSTAND
        finally:
            with self._lock:
                self._in_flight -= 1

    def store(self, event: Event) -> int:
        request: Any = event.request
        peer = Peer.of(event)
        sop_class = str(request.AffectedSOPClassUID or "")
        sop_instance = str(request.AffectedSOPInstanceUID or "")
        syntax = UID(str(event.context.transfer_syntax))
        data = cast(BytesIO, request.DataSet).getbuffer()
        try:
            path, ds = self.spool(data, sop_class, sop_instance, syntax, peer)
        except Refused as refused:
            log.warning("route %s: C-STORE of %s from %s (%s) refused with 0x%04X: %s", self.route_id, sop_instance,
                        peer.calling_ae, peer.address, refused.status, refused)  # fmt: skip
            return refused.status
        finally:
            data.release()
        headers = exchange_headers(ds, sop_class, sop_instance, syntax, peer)
        attachment = Attachment(sop_instance, "application/dicom", path=str(path))
        headers[ATTACHMENTS_HEADER] = attachments_header([attachment])
        try:
            body = encoded.header_json(ds)
        except Exception as exc:  # pydicom refused a value: the file still goes through, its JSON is poorer
            log.info("route %s: no JSON header for %s: %s", self.route_id, sop_instance, type(exc).__name__)
            body = b"{}"
        exchange = Exchange(body=body, headers=headers, attachments=[attachment])
        status = self.hand_over(exchange, path, sop_instance, peer)
        audit.stored(self.transfers, event, headers, str(ds.get("IssuerOfPatientID", "") or ""), status == SUCCESS)
        if status != SUCCESS:
            log.warning("route %s: C-STORE of %s from %s (%s) answered 0x%04X", self.route_id, sop_instance,
                        peer.calling_ae, peer.address, status)  # fmt: skip
        return status

    def spool(
        self, data: memoryview, sop_class: str, sop_instance: str, syntax: UID, peer: Peer
    ) -> tuple[Path, Dataset]:
        """Check the data set, read its header and write it as a Part 10 file in the spool folder."""
        try:
            plain = encoded.plain_bytes(data, syntax)
            encoded.check_structure(plain, syntax)
            ds = encoded.read_header(plain, syntax)
            found = str(ds.get("SOPInstanceUID", "") or "").strip()
        except encoded.CorruptDataSet as exc:
            raise Refused(CANNOT_UNDERSTAND, str(exc)) from None
        if found != sop_instance:
            why = "the data set has no SOP Instance UID" if not found else "the data set's SOP Instance UID differs"
            raise Refused(DOES_NOT_MATCH, f"{why} from the command's")
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        path = self.spool_dir / f"dicom-{uuid.uuid4().hex}.dcm"
        meta = encoded.file_meta(sop_class, sop_instance, syntax, peer.calling_ae)
        try:
            encoded.write_part10(path, meta, data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.unlink()
            raise Refused(OUT_OF_RESOURCES, f"cannot write the spool file: {exc}") from None
        # The archive stores this very file next: it takes this header instead of parsing the file again.
        ds.file_meta = meta
        remember_header(path, ds)
        return path, ds

    def hand_over(self, exchange: Exchange, path: Path, sop_instance: str, peer: Peer) -> int:
        future = asyncio.run_coroutine_threadsafe(self._handle(exchange), self.loop)
        try:
            outcome = future.result(float(self.options.store_timeout))
        except concurrent.futures.TimeoutError:
            log.warning("route %s: route for %s from %s not done within %gs; answered 0xA700, it completes later",
                        self.route_id, sop_instance, peer.address, self.options.store_timeout)  # fmt: skip
            return OUT_OF_RESOURCES
        except Exception as exc:
            log.error("route %s: %s from %s not taken: %s", self.route_id, sop_instance, peer.address,
                      type(exc).__name__)  # fmt: skip
            outcome = Outcome(None, "failed", error=exc)
        if outcome.message_id is None:  # not journaled: nothing refers to the spool file
            with contextlib.suppress(OSError):
                path.unlink()
        elif outcome.status == "failed" and outcome.error is not None:
            log.info("route %s: message %s (%s) failed: %s", self.route_id, outcome.message_id, sop_instance,
                     type(outcome.error).__name__)  # fmt: skip
        return status_of(outcome)

    async def _handle(self, exchange: Exchange) -> Outcome:
        return await self.handler(exchange, True)
