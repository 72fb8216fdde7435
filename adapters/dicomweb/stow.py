"""STOW-RS (PS3.18 10.5): each application/dicom part becomes one exchange, like a C-STORE.

Parts are streamed to spool files (the multipart parser is the MTOM one,
which counts every byte against ``max_body``), and each is handed to the
route as soon as it is on disk, a few at a time, while the next ones arrive.
The exchange is the one the ``dicom:`` adapter makes for a C-STORE, built by
its own functions (headers, JSON body, outcome -> status): the header as DICOM
JSON without bulk data for body, the spooled Part 10 file as a file-backed
attachment, the ``dicom-*`` headers, ``dicom-calling-ae`` DICOMWEB. A part
that is not DICOM, is not well formed to its last byte (a truncated upload),
lacks an identifying UID or belongs to another study than the URL names is
refused without being journaled. The answer is the Store Instances Response
(PS3.18 Table 10.5.3-3): 200 all stored, 202 some failed, 409 none stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web
from pydicom.uid import UID

from adapters.dicom.dataset import CorruptDataSet, check_structure, header_json, plain_bytes
from adapters.dicom.store import SUCCESS, Peer, exchange_headers, status_of
from adapters.dicomweb.dicomjson import NotDicomError, read_header
from adapters.dicomweb.options import DicomWebOptions
from adapters.dicomweb.responses import Call, HttpError, dicom_json
from adapters.soap.mtom import FILE_CHUNK, MtomError, PartStream, TooLargeError, content_type_params
from esb.components import Handler, Outcome
from esb.exchange import ATTACHMENTS_HEADER, Attachment, Exchange, attachments_header
from esb.http.auth import auth_user
from profiles.dicom import audit

log = logging.getLogger("esb.adapters.dicomweb")

CALLING_AE = "DICOMWEB"
DICOM = "application/dicom"
READ_CHUNK = 256 * 1024
#: PS3.4 B.2.3 statuses used as Failure Reason (0008,1197)
CANNOT_UNDERSTAND = 0xC000
DOES_NOT_MATCH = 0xA900
#: in the Cxxx "cannot understand" range, as dcm4chee answers it: another study than the URL's
OTHER_STUDY = 0xC409
#: (0008,1150) Referenced SOP Class UID, (0008,1155) Referenced SOP Instance UID, (0008,1190) Retrieve URL,
#: (0008,1197) Failure Reason, (0008,1198) Failed SOP Sequence, (0008,1199) Referenced SOP Sequence
REF_CLASS, REF_INSTANCE, RETRIEVE_URL = "00081150", "00081155", "00081190"
FAILURE_REASON, FAILED_SEQUENCE, REFERENCED_SEQUENCE = "00081197", "00081198", "00081199"


@dataclass
class Stored:
    """What became of one part."""

    sop_class: str = ""
    sop_instance: str = ""
    study: str = ""
    series: str = ""
    failure: int | None = None


def failure_status(outcome: Outcome) -> int | None:
    """None when the instance is stored; else the Failure Reason: the status a C-STORE gets for the outcome."""
    status = status_of(outcome)
    return None if status == SUCCESS else status


async def _spool(stream: PartStream, path: Path) -> None:
    buffer = bytearray()
    with open(path, "wb") as handle:
        while piece := await stream.read():
            buffer += piece
            if len(buffer) >= FILE_CHUNK:
                await asyncio.to_thread(handle.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await asyncio.to_thread(handle.write, bytes(buffer))


def _dataset_offset(fp: BinaryIO) -> int:
    """Where the data set starts: after the preamble and the group 0002 elements (explicit VR LE, PS3.10 7.1)."""
    position = 132
    while True:
        fp.seek(position)
        head = fp.read(8)
        if len(head) < 8 or struct.unpack("<H", head[:2])[0] != 0x0002:
            return position
        if head[4:6] in (b"OB", b"OW", b"UN", b"UT", b"SQ", b"UC", b"UR"):
            position += 12 + struct.unpack("<L", fp.read(4))[0]
        else:
            position += 8 + struct.unpack("<H", head[6:8])[0]


class Refused(Exception):
    """A part refused before the route: its identity as far as it is known, and the Failure Reason."""

    def __init__(self, stored: Stored, status: int, why: str) -> None:
        super().__init__(why)
        stored.failure = status
        self.stored = stored


def _inspect(path: Path, peer: Peer) -> tuple[Stored, dict[str, str], bytes]:
    """The part's identity, exchange headers and body (header as DICOM JSON, no bulk data), as for a C-STORE.

    The whole data set is walked first (element headers only): pydicom alone reads
    a truncated file without complaint, and the archive must not keep one.
    """
    with open(path, "rb") as fp:
        try:
            header = read_header(fp)
        except NotDicomError as exc:
            raise Refused(Stored(), CANNOT_UNDERSTAND, str(exc)) from None
        ds = header.dataset
        stored = Stored(
            str(ds.get("SOPClassUID", "") or ""),
            str(ds.get("SOPInstanceUID", "") or ""),
            str(ds.get("StudyInstanceUID", "") or ""),
            str(ds.get("SeriesInstanceUID", "") or ""),
        )
        syntax = UID(header.transfer_syntax)
        offset = _dataset_offset(fp)
        with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as whole:
            with whole[offset:] as data:
                try:
                    check_structure(plain_bytes(data, syntax), syntax)
                except CorruptDataSet as exc:
                    raise Refused(stored, CANNOT_UNDERSTAND, str(exc)) from None
        if not (stored.sop_class and stored.sop_instance and stored.study and stored.series):
            raise Refused(stored, DOES_NOT_MATCH, "the data set lacks one of its identifying UIDs")
        try:
            body = header_json(ds)
        except Exception as exc:  # pydicom refused a value: the file still goes through, its JSON is poorer
            log.info("no JSON header for a STOW-RS part: %s", type(exc).__name__)
            body = b"{}"
    headers = exchange_headers(ds, stored.sop_class, stored.sop_instance, syntax, peer)
    return stored, headers, body


class StowRequest:
    """One STOW-RS POST: its parts, in order, and what became of each."""

    def __init__(
        self, call: Call, options: DicomWebOptions, handler: Handler, spool_dir: Path, study: str | None, called_ae: str
    ) -> None:
        self.call, self.options, self.handler, self.spool_dir, self.study = call, options, handler, spool_dir, study
        self.peer = Peer(CALLING_AE, called_ae, call.request.remote or "")
        self.tasks: list[asyncio.Task[Stored]] = []
        self.slots = asyncio.Semaphore(options.stow_parallel)
        self.transfers = audit.stow(call.request, call.base)

    async def run(self) -> web.Response:
        request = self.call.request
        media_type, params = content_type_params(request.headers.get("Content-Type", "") or "text/plain")
        part_type = params.get("type", DICOM).lower()
        if media_type != "multipart/related" or not params.get("boundary") or part_type != DICOM:
            raise HttpError(415, f'STOW-RS takes multipart/related; type="{DICOM}" with a boundary')
        if request.content_length is not None and request.content_length > self.options.max_body:
            raise HttpError(413, f"the request is larger than the {self.options.max_body} bytes accepted here")
        await asyncio.to_thread(self.spool_dir.mkdir, parents=True, exist_ok=True)
        stream = PartStream(request.content.iter_chunked(READ_CHUNK), params["boundary"], limit=self.options.max_body)
        try:
            while (part := await stream.next_part()) is not None:
                await self._take(stream, part)
        except TooLargeError as exc:
            await self._settle()
            raise HttpError(413, str(exc)) from None
        except MtomError as exc:
            await self._settle()
            raise HttpError(400, f"the multipart body is malformed: {exc}") from None
        except BaseException:  # the caller went away: what the route has, it finishes
            await self._settle()
            raise
        results = await self._settle()
        if not results:
            raise HttpError(400, "the request holds no instances")
        return self._answer(results)

    async def _take(self, stream: PartStream, part: dict[str, str]) -> None:
        path = self.spool_dir / f"dicomweb-{uuid.uuid4().hex}.dcm"
        try:
            await _spool(stream, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if content_type_params(part.get("content-type", DICOM))[0] != DICOM:
            path.unlink(missing_ok=True)
            self.tasks.append(asyncio.create_task(_done(Stored(failure=CANNOT_UNDERSTAND))))
            return
        await self.slots.acquire()
        task = asyncio.create_task(self._store(path))
        task.add_done_callback(lambda _: self.slots.release())
        self.tasks.append(task)

    async def _settle(self) -> list[Stored]:
        """Wait for the parts handed over; shielded, since the engine must finish what it took."""
        results = list(await asyncio.gather(*(asyncio.shield(t) for t in self.tasks)))
        audit.done(self.transfers)  # one audit event per study of the request
        return results

    async def _store(self, path: Path) -> Stored:
        try:
            stored, headers, body = await asyncio.to_thread(_inspect, path, self.peer)
            if self.study is not None and stored.study != self.study:
                raise Refused(stored, OTHER_STUDY, "the instance belongs to another study than the URL names")
        except Refused as refused:
            log.info("STOW-RS part refused with 0x%04X: %s", refused.stored.failure, refused)
            path.unlink(missing_ok=True)
            return refused.stored
        except (OSError, ValueError) as exc:
            log.info("STOW-RS part refused: %s", exc)
            path.unlink(missing_ok=True)
            return Stored(failure=CANNOT_UNDERSTAND)
        attachment = Attachment(stored.sop_instance, DICOM, path=str(path))
        headers[ATTACHMENTS_HEADER] = attachments_header([attachment])
        user = auth_user(self.call.request)  # HTTP credentials the hub checked (esb.http.auth)
        if user:
            headers["auth-user"] = user
        outcome = await self.handler(Exchange(body=body, headers=headers, attachments=[attachment]), True)
        stored.failure = failure_status(outcome)
        audit.stow_part(self.transfers, headers, stored.failure is None)
        if outcome.message_id is None:  # not journaled: nothing else refers to the spool file
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        if stored.failure is not None:
            log.info("STOW-RS instance failed with 0x%04X (message %s)", stored.failure, outcome.message_id)
        return stored

    def _answer(self, results: list[Stored]) -> web.Response:
        referenced, failed = [], []
        for item in results:
            ids = {REF_CLASS: _ui(item.sop_class), REF_INSTANCE: _ui(item.sop_instance)}
            if item.failure is None:
                url = f"{self.call.base}/studies/{item.study}/series/{item.series}/instances/{item.sop_instance}"
                referenced.append({**ids, RETRIEVE_URL: {"vr": "UR", "Value": [url]}})
            else:
                failed.append({**ids, FAILURE_REASON: {"vr": "US", "Value": [item.failure]}})
        answer: dict[str, Any] = {}
        studies = {item.study for item in results if item.failure is None}
        if len(studies) == 1:
            answer[RETRIEVE_URL] = {"vr": "UR", "Value": [f"{self.call.base}/studies/{studies.pop()}"]}
        if failed:
            answer[FAILED_SEQUENCE] = {"vr": "SQ", "Value": failed}
        if referenced:
            answer[REFERENCED_SEQUENCE] = {"vr": "SQ", "Value": referenced}
        status = 200 if not failed else (202 if referenced else 409)
        return dicom_json(self.call, answer, status=status)


def _ui(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


async def _done(stored: Stored) -> Stored:
    return stored
