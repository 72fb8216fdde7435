"""``service:dicom-archive``: the image archive hosted on the bus.

- ``dicom-archive/store``: the exchange's DICOM attachment (a spooled Part 10
  file from the ``dicom:`` or ``dicomweb:`` consumer) goes into the archive;
  the file is moved into the store, so the route's ``store: metadata`` keeps
  the bytes written once. A refusal raises :class:`DicomError`, whose status
  the consumer answers with. Replayed from the journal after the file was
  already moved, the instance is found in the index and the step succeeds.
- ``dicom-archive/complete-studies`` (from a ``timer:`` route): studies with no
  new instance for ``study_complete_after`` become complete. Their UIDs are
  the reply (header ``dicom-complete-studies``, a JSON list, and the body), and
  each is handed to the ``on_complete`` hooks, where the XDS-I publisher
  registers itself; a study whose hook failed stays ``complete`` (not
  ``archived``) and is listed by ``archive.studies_with_status("complete")``.
- ``dicom-archive/expire-cache``: fetched on-demand copies past their expiry go.

Adapters that answer queries (C-FIND, QIDO-RS, C-MOVE, WADO) use the service's
``archive`` attribute (an :class:`~profiles.dicom.api.ArchiveApi`) directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from esb.components import Service
from esb.errors import DicomError
from esb.exchange import ATTACHMENTS_HEADER, Attachment, Exchange
from profiles.dicom.archive import Archive
from profiles.dicom.config import DicomConfig, load_dicom_config

log = logging.getLogger("esb.dicom.service")

COMPLETE_HEADER = "dicom-complete-studies"
DICOM_TYPES = ("application/dicom", "application/octet-stream")


class DicomArchiveService(Service):
    operations: ClassVar[tuple[str, ...]] = ("store", "complete-studies", "expire-cache", "collect")

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.config: DicomConfig = load_dicom_config()
        #: called with each study UID that became complete (the XDS-I publisher adds itself here)
        self.on_complete: list[Callable[[str], None]] = []
        self._archive: Archive | None = None
        self._building = threading.Lock()

    @property
    def archive(self) -> Archive:
        """The archive on the engine's database and the configured storage (built on first use)."""
        if self._archive is None:
            with self._building:
                if self._archive is None:
                    self._archive = self._build()
        return self._archive

    def _build(self) -> Archive:
        from esb.storage import LocalDiskStore
        from profiles.empi.config import load_empi_config

        journal = self.context.journal
        if journal is None:
            raise RuntimeError("service:dicom-archive needs the engine's database")
        settings = self.context.settings
        root = self.config.storage or settings.data_dir / "dicom"
        from profiles.dicom.ondemand import fetcher_for

        master_oid = load_empi_config().master_domain.universal_id
        # on-demand instances (listed by a hospital's KOS) are fetched from their source when opened
        fetcher = fetcher_for(
            journal.engine, self.config, spool_dir=Path(settings.spool_dir), local_ae=settings.dicom_ae_title
        )
        return Archive(
            journal.engine, LocalDiskStore(root), self.config, master_oid,
            ae_title=settings.dicom_ae_title, fetcher=fetcher,
        )  # fmt: skip

    async def start(self) -> None:
        await asyncio.to_thread(lambda: self.archive)

    async def call(self, operation: str, exchange: Exchange) -> Exchange | None:
        if operation == "store":
            return await asyncio.to_thread(self._store, exchange)
        if operation == "complete-studies":
            return await asyncio.to_thread(self._complete, exchange)
        if operation == "collect":
            return await asyncio.to_thread(self._collect, exchange)
        if operation == "expire-cache":
            expired = await asyncio.to_thread(self.archive.expire_cache)
            return _reply(exchange, {"expired": expired}, {})
        raise ValueError(f"service:dicom-archive has no operation {operation!r} ({'|'.join(self.operations)})")

    def _collect(self, exchange: Exchange) -> Exchange:
        """Active collection (A3.4) from a ``timer:`` route; parameters in ``dicom-collect-*`` headers."""
        from profiles.dicom.collect import CollectRequest, run_collection

        try:
            request = CollectRequest.from_headers(exchange.headers)
        except ValueError as exc:
            raise DicomError(str(exc), status=0xC000) from None
        remote = self.config.remote_aes.get(request.source)
        if remote is None:
            known = ", ".join(sorted(self.config.remote_aes)) or "none configured"
            raise DicomError(f"unknown remote AE '{request.source}' (known: {known})", status=0xA801)
        settings = self.context.settings
        journal = self.context.journal
        assert journal is not None
        report = run_collection(
            journal.engine, self.archive, remote, since=request.since, until=request.until, method=request.method,
            local_ae=settings.dicom_ae_title, spool_dir=Path(settings.spool_dir), time_budget=request.time_budget,
        )  # fmt: skip
        return _reply(exchange, report.as_dict(), {"dicom-collect-job": str(report.job_id)})

    def _store(self, exchange: Exchange) -> Exchange:
        attachment = _dicom_attachment(exchange)
        headers = exchange.headers
        calling_ae = headers.get("dicom-calling-ae", "")
        source = headers.get("dicom-source", "") or calling_ae
        if attachment.path is not None and not Path(attachment.path).exists():
            return self._already_stored(exchange)
        if attachment.path is not None:
            stored = self.archive.store(Path(attachment.path), calling_ae=calling_ae, source=source)
        else:
            stored = self._store_bytes(attachment.data or b"", calling_ae, source)
        facts = {
            "dicom-study-uid": stored.instance.study_uid,
            "dicom-series-uid": stored.instance.series_uid,
            "dicom-sop-instance-uid": stored.instance.sop_instance_uid,
            "dicom-new-instance": str(stored.new_instance).lower(),
            "dicom-new-study": str(stored.new_study).lower(),
        }
        return _reply(exchange, None, facts)

    def _store_bytes(self, data: bytes, calling_ae: str, source: str) -> Any:
        """An in-memory part (a small STOW-RS instance): spooled to a file the store can adopt."""
        spool = Path(self.context.settings.spool_dir)
        spool.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=spool, prefix="dicom-", suffix=".dcm", delete=False) as file:
            file.write(data)
            path = Path(file.name)
        try:
            return self.archive.store(path, calling_ae=calling_ae, source=source)
        finally:
            path.unlink(missing_ok=True)  # refused: nothing was adopted

    def _already_stored(self, exchange: Exchange) -> Exchange:
        """A replay after the spooled file was moved into the store: fine if the index has the instance."""
        uid = exchange.headers.get("dicom-sop-instance-uid", "")
        instance = self.archive.instance(uid) if uid else None
        if instance is None or instance.storage_key is None:
            raise DicomError("the spooled DICOM file is gone and the instance is not in the archive", status=0xA700)
        facts = {"dicom-study-uid": instance.study_uid, "dicom-new-instance": "false", "dicom-new-study": "false"}
        return _reply(exchange, None, facts)

    def _complete(self, exchange: Exchange) -> Exchange:
        done = self.archive.complete_studies()
        failed = 0
        for study_uid in done:
            for hook in list(self.on_complete):
                try:
                    hook(study_uid)
                except Exception:
                    failed += 1
                    log.debug("on_complete hook failed for study %s", study_uid, exc_info=True)
        if failed:
            log.warning("%d on_complete hook call(s) failed; those studies stay 'complete' for a retry", failed)
        return _reply(exchange, {"complete": done}, {COMPLETE_HEADER: json.dumps(done)})


def _dicom_attachment(exchange: Exchange) -> Attachment:
    if not exchange.attachments:
        raise DicomError("the message has no DICOM attachment to store")
    for attachment in exchange.attachments:
        if attachment.content_type.split(";")[0].strip().lower() in DICOM_TYPES:
            return attachment
    return exchange.attachments[0]


def _reply(exchange: Exchange, body: dict[str, Any] | None, headers: dict[str, str]) -> Exchange:
    """The route's message after the step: the same body (or ``body`` as JSON), no attachments left to carry."""
    out = exchange.copy(json.dumps(body).encode("utf-8") if body is not None else None)
    out.attachments = []
    out.headers.pop(ATTACHMENTS_HEADER, None)
    out.headers.update(headers)
    if body is not None:
        out.headers["content-type"] = "application/json"
    return out
