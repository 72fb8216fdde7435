"""The sending side: C-STORE the exchange's DICOM file to a peer SCP (a queued delivery).

``to: dicom://PACS@pacs:104?calling_ae=ESB`` sends the exchange's
``application/dicom`` attachment (the Part 10 file a C-STORE or STOW-RS
spooled) in its own transfer syntax, over one association per delivery.
When that file is no longer there -- ``service:dicom-archive/store`` moved it
into the archive, or ``store: metadata`` let the journal delete it -- the
instance named by the ``dicom-*-uid`` headers is read from the archive
(option ``archive``), so "archive, then forward to the PACS" works.
pynetdicom is blocking, so the send runs in a worker thread. Results:

- 0x0000 and warnings (0xB000, 0xB006, 0xB007): delivered; the reply carries
  ``dicom-status``;
- no connection, association aborted or rejected transiently, timeouts,
  0xA7xx out of resources, other statuses: :class:`DicomSendError`, retried;
- association rejected permanently, our context refused, 0xA9xx or 0xCxxx,
  no instance to send: :class:`~esb.errors.PermanentDeliveryError`, dead letter.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from adapters.dicom import network
from adapters.dicom.contexts import store_contexts
from adapters.dicom.options import DicomOptions
from esb.components import Producer
from esb.errors import DeliveryError, DicomError, DicomRefusedError, DicomSendError
from esb.exchange import Attachment, Exchange
from profiles.dicom.api import ArchiveApi

WARNINGS = (0xB000, 0xB006, 0xB007)


def dicom_attachment(exchange: Exchange) -> Attachment | None:
    """The message's DICOM file, when it is still there."""
    for attachment in exchange.attachments:
        if attachment.content_type.split(";")[0].strip().lower() != "application/dicom":
            continue
        if attachment.data is not None or Path(str(attachment.path)).is_file():
            return attachment
    return None


def image_identifier(headers: dict[str, str]) -> Dataset | None:
    """The IMAGE-level unique keys of the instance the headers name (None when they name none)."""
    keys = {
        "StudyInstanceUID": headers.get("dicom-study-uid", ""),
        "SeriesInstanceUID": headers.get("dicom-series-uid", ""),
        "SOPInstanceUID": headers.get("dicom-sop-instance-uid", ""),
    }
    if not keys["SOPInstanceUID"]:
        return None
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    return identifier


def classify(status: int, where: str) -> None:
    """Raise for a C-STORE status that is not a success (see the module docstring)."""
    if status == 0x0000 or status in WARNINGS:
        return
    said = f"{where} answered C-STORE status 0x{status:04X}"
    if 0xA900 <= status <= 0xA9FF or 0xC000 <= status <= 0xCFFF:
        raise DicomRefusedError(f"{said} (refused)")
    raise DicomSendError(said)


class DicomProducer(Producer):
    def __init__(
        self,
        options: DicomOptions,
        calling_ae: str,
        ssl_context: Callable[[], ssl.SSLContext] | None = None,
        archive: Callable[[], ArchiveApi] | None = None,
    ) -> None:
        self.options, self.calling_ae, self.archive = options, calling_ae, archive
        self.called_ae = options.ae_title or "ANY-SCP"
        self.where = f"dicom://{self.called_ae}@{options.host}:{options.port}"
        self.send_timeout = float(options.timeout) + 5.0
        self._ssl_factory = ssl_context
        self._ssl: ssl.SSLContext | None = None

    async def send(self, exchange: Exchange) -> Exchange | None:
        if self._ssl_factory is not None and self._ssl is None:
            try:
                self._ssl = self._ssl_factory()
            except OSError as exc:
                raise DicomSendError(f"{self.where}: cannot load TLS files: {exc}") from exc
        try:
            async with asyncio.timeout(float(self.options.timeout)):
                status = await asyncio.to_thread(self._store, exchange)
        except TimeoutError as exc:
            raise DicomSendError(f"{self.where}: no C-STORE response within {self.options.timeout:g}s") from exc
        classify(status, self.where)
        return Exchange(
            body=b"",
            headers={"dicom-status": f"0x{status:04X}", "dicom-called-ae": self.called_ae},
        )

    def _read(self, exchange: Exchange) -> Dataset:
        """The instance to send: the message's file, else the archive's copy (read, pixel data untouched)."""
        attachment = dicom_attachment(exchange)
        try:
            if attachment is not None:
                with attachment.open() as stream:
                    return dcmread(stream)
            identifier = image_identifier(exchange.headers)
            if self.archive is None or identifier is None:
                raise DicomRefusedError("the message has no DICOM file to send (and names no archived instance)")
            archive = self.archive()
            found = archive.select("IMAGE", identifier)
            if not found:
                raise DicomRefusedError(f"instance {identifier.SOPInstanceUID} is neither attached nor archived")
            with archive.open(found[0]) as stream:
                return dcmread(stream)
        except DicomRefusedError:
            raise
        except (OSError, DicomError) as exc:  # the file or the archive is unavailable right now
            raise DicomSendError(f"the instance cannot be read: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise DicomRefusedError(f"the instance is not readable DICOM: {type(exc).__name__}: {exc}") from exc

    def _store(self, exchange: Exchange) -> int:
        ds = self._read(exchange)
        syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
        sop_class = str(ds.get("SOPClassUID", ""))
        if not syntax or not sop_class:
            raise DicomRefusedError("the DICOM file names no SOP class or transfer syntax")
        o = self.options
        ae = AE(self.calling_ae)
        network.configure(ae, o)
        assoc = ae.associate(
            o.host,
            o.port,
            contexts=store_contexts([(sop_class, syntax)]),
            ae_title=self.called_ae,
            max_pdu=o.max_pdu,
            tls_args=network.tls_client_args(self._ssl, o.host),
            evt_handlers=[network.NODELAY_HANDLER],
        )
        if not assoc.is_established:
            raise self._not_associated(assoc)
        try:
            try:
                answer = assoc.send_c_store(ds)
            except ValueError as exc:  # no accepted context for the SOP class / transfer syntax
                raise DicomRefusedError(f"{self.where} accepts no presentation context for it: {exc}") from exc
            status = answer.get("Status") if answer else None
            if status is None:
                raise DicomSendError(f"{self.where}: no C-STORE response (association aborted or timed out)")
            return int(status)
        finally:
            if assoc.is_established:
                assoc.release()

    def _not_associated(self, assoc: Any) -> DeliveryError:
        primitive = getattr(assoc.acceptor, "primitive", None)
        if assoc.is_rejected and primitive is not None:
            said = f"{self.where} rejected the association: {primitive.reason_str} ({primitive.result_str})"
            if primitive.result == 0x01:
                return DicomRefusedError(said)
            return DicomSendError(said)
        if assoc.rejected_contexts and not assoc.accepted_contexts:
            return DicomRefusedError(f"{self.where} accepts no presentation context for this SOP class and syntax")
        return DicomSendError(f"{self.where}: could not associate (peer unreachable, aborted, or not DICOM)")
