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
  Such studies (their patient unknown to the EMPI yet, XDS unreachable) are
  offered to the hooks again, once complete for ``study_complete_after`` and
  at most that often: the XDS-I publisher then publishes a study whose
  patient was registered after its images came, and leaves one whose
  manifest is already registered alone.
- ``dicom-archive/register-remote`` (on-demand mode, A4): the attachment is a
  Key Object Selection document from a hospital that keeps its images. Every
  instance it lists is indexed as known but not cached (fetched from the
  hospital when asked for: :mod:`profiles.dicom.ondemand`); a series without a
  configured Retrieve AE Title or a Retrieve URL is fetched from the calling AE
  when that is a configured remote AE. Then the KOS itself is stored like any
  instance: the platform keeps the KOS and the metadata, not the images. The
  study completes like any other, and the XDS-I publisher's manifest lists
  its instances as retrievable from this archive (consumers retrieve through
  us; we fetch on demand). The hospital's KOS is an instance of that study
  here, so that manifest lists it too, as one more object this archive
  serves: its evidence names the hospital, the manifest's names us, and a
  consumer following the manifest gets the images from us either way.
- ``dicom-archive/expire-cache``: fetched on-demand copies past their expiry go.
- ``dicom-archive/commitment-reports`` (from a ``timer:`` route): the N-EVENT-REPORT
  of every storage commitment request that is due goes to its requester
  (:mod:`profiles.dicom.commitment_report`); the reply lists what became of each.

Adapters that answer queries (C-FIND, QIDO-RS, C-MOVE, WADO) use the service's
``archive`` attribute (an :class:`~profiles.dicom.api.ArchiveApi`) directly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from esb.components import Service
from esb.errors import DicomError
from esb.exchange import ATTACHMENTS_HEADER, Attachment, Exchange
from profiles.dicom.archive import Archive
from profiles.dicom.commitment import Commitments
from profiles.dicom.commitment_report import Reported, report_due
from profiles.dicom.config import DicomConfig, load_dicom_config
from profiles.dicom.header import NOT_SUPPORTED
from profiles.dicom.schema import COMPLETE, studies

log = logging.getLogger("esb.dicom.service")

COMPLETE_HEADER = "dicom-complete-studies"
#: studies left ``complete`` offered to the hooks again per retry
RETRY_BATCH = 100
DICOM_TYPES = ("application/dicom", "application/octet-stream")
#: Key Object Selection Document Storage: what a hospital in on-demand mode sends per exam
KOS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"


class DicomArchiveService(Service):
    operations: ClassVar[tuple[str, ...]] = (
        "store", "register-remote", "complete-studies", "expire-cache", "collect", "commitment-reports",
    )  # fmt: skip

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.config: DicomConfig = load_dicom_config()
        #: called with each study UID that became complete (the XDS-I publisher adds itself here)
        self.on_complete: list[Callable[[str], None]] = []
        self._archive: Archive | None = None
        self._building = threading.Lock()
        self._next_retry = 0.0  # time.monotonic() of the next retry of studies left 'complete'
        self._retry_cursor = 0  # the last study key retried (0: from the start)

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
        if operation == "register-remote":
            return await asyncio.to_thread(self._register_remote, exchange)
        if operation == "complete-studies":
            return await asyncio.to_thread(self._complete, exchange)
        if operation == "collect":
            return await asyncio.to_thread(self._collect, exchange)
        if operation == "expire-cache":
            expired = await asyncio.to_thread(self.archive.expire_cache)
            return _reply(exchange, {"expired": expired}, {})
        if operation == "commitment-reports":
            reported = await asyncio.to_thread(self._commitment_reports)
            return _reply(exchange, {"reports": [dataclasses.asdict(r) for r in reported]}, {})
        raise ValueError(f"service:dicom-archive has no operation {operation!r} ({'|'.join(self.operations)})")

    def _commitment_reports(self) -> list[Reported]:
        commitments = Commitments(self.archive.engine)
        return report_due(commitments, self.config.remote_aes, self.context.settings.dicom_ae_title)

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
            path = self._by_policy(Path(attachment.path), headers.get("dicom-transfer-syntax", ""))
            stored = self.archive.store(path, calling_ae=calling_ae, source=source)
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

    def _by_policy(self, path: Path, received: str) -> Path:
        """The file to store: as received, or transcoded when ``store_as`` asks for another syntax (B3.2).

        Only a lossless or uncompressed target is allowed, lossy input is kept as
        it came, and an instance that cannot be re-encoded is stored as received.
        """
        store_as = self.config.store_as
        if not store_as or received == store_as:
            return path
        from pydicom import dcmread

        from profiles.dicom.transcode import TranscodePolicy, pixel_info, transcode

        policy = TranscodePolicy(store_as=store_as)
        with path.open("rb") as stream:
            header = dcmread(stream, defer_size=1024)  # pixel data present (for its description), not read
        target = policy.storage_syntax(str(header.file_meta.get("TransferSyntaxUID", received)), pixel_info(header))
        if target is None:
            return path
        try:
            data = transcode(path, target, policy=policy)
        except DicomError as exc:
            log.info("kept an instance as received: it cannot be stored as %s (%s)", target, exc.text)
            return path
        converted = path.with_name(path.name + ".transcoded")
        converted.write_bytes(data)
        os.replace(converted, path)  # the journal lists the spool path: keep it
        return path

    def _store_bytes(self, data: bytes, calling_ae: str, source: str) -> Any:
        """An in-memory part (a small STOW-RS instance): spooled to a file the store can adopt."""
        path = self._spool(data)
        try:
            return self.archive.store(path, calling_ae=calling_ae, source=source)
        finally:
            path.unlink(missing_ok=True)  # refused: nothing was adopted

    def _spool(self, data: bytes) -> Path:
        spool = Path(self.context.settings.spool_dir)
        spool.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=spool, prefix="dicom-", suffix=".dcm", delete=False) as file:
            file.write(data)
            return Path(file.name)

    def _register_remote(self, exchange: Exchange) -> Exchange:
        """On-demand intake: index what the hospital's KOS lists (not cached), then keep the KOS itself."""
        from profiles.dicom.ondemand import register_remote_study

        attachment = _dicom_attachment(exchange)
        calling_ae = exchange.headers.get("dicom-calling-ae", "")
        if attachment.path is not None and not Path(attachment.path).exists():
            return self._already_stored(exchange)  # a replay: both steps were done before the file moved
        path = Path(attachment.path) if attachment.path is not None else self._spool(attachment.data or b"")
        try:
            kos = _read_kos(path)
            remote = register_remote_study(
                self.archive, kos, remotes=self.config.remote_aes, default_source=self._remote_name(calling_ae)
            )
            stored = self.archive.store(path, calling_ae=calling_ae, source=calling_ae)
        finally:
            if attachment.path is None:
                path.unlink(missing_ok=True)
        facts = {
            "dicom-study-uid": stored.instance.study_uid,
            "dicom-sop-instance-uid": stored.instance.sop_instance_uid,
            "dicom-new-instance": str(stored.new_instance).lower(),
            "dicom-new-study": str(stored.new_study).lower(),
            "dicom-remote-studies": json.dumps([s.study_uid for s in remote]),
            "dicom-remote-instances": str(sum(s.instances for s in remote)),
        }
        return _reply(exchange, None, facts)

    def _remote_name(self, ae_title: str) -> str:
        """The remote AE (config name) a calling AE title is, or "" when it is none of them."""
        if not ae_title:
            return ""
        if ae_title in self.config.remote_aes:
            return ae_title
        return next((name for name, r in self.config.remote_aes.items() if r.ae_title == ae_title), "")

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
        offered = done + self._left_complete(done)
        failed = 0
        for study_uid in offered:
            for hook in list(self.on_complete):
                try:
                    hook(study_uid)
                except Exception:
                    failed += 1
                    log.debug("on_complete hook failed for study %s", study_uid, exc_info=True)
        if failed:
            log.warning("%d on_complete hook call(s) failed; those studies stay 'complete' for a retry", failed)
        return _reply(exchange, {"complete": done}, {COMPLETE_HEADER: json.dumps(done)})

    def _left_complete(self, done: list[str]) -> list[str]:
        """Studies the hooks left ``complete`` before, offered to them again (see the module docstring).

        At most every ``study_complete_after`` per process, ``RETRY_BATCH`` at a
        time in turn (a cursor over the study keys, so a few studies that can
        never be published do not keep the others waiting), and only studies
        complete for that long already: one whose hook is still at work on
        another node is not published twice.
        """
        now = time.monotonic()
        if not self.on_complete or now < self._next_retry:
            return []
        self._next_retry = now + self.config.study_complete_after
        cutoff = self.archive.clock() - dt.timedelta(seconds=self.config.study_complete_after)
        query = (
            select(studies.c.pk, studies.c.study_uid)
            .where(studies.c.status == COMPLETE, studies.c.completed_at <= cutoff, studies.c.pk > self._retry_cursor)
            .order_by(studies.c.pk)
            .limit(RETRY_BATCH)
        )
        with self.archive.engine.connect() as conn:
            rows = conn.execute(query).all()
        self._retry_cursor = rows[-1].pk if len(rows) == RETRY_BATCH else 0
        return [row.study_uid for row in rows if row.study_uid not in done]


def _read_kos(path: Path) -> Dataset:
    """The KOS header; anything else is refused (this intake indexes what a KOS lists, nothing more)."""
    try:
        ds = dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise DicomError(f"the attachment is not a DICOM Part 10 file: {type(exc).__name__}", status=0xC000) from None
    if str(ds.get("SOPClassUID", "")) != KOS_SOP_CLASS:
        raise DicomError("the on-demand intake takes Key Object Selection documents only", status=NOT_SUPPORTED)
    return ds


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
