"""Query/Retrieve SCU towards a remote PACS: C-FIND, C-GET into local files, C-MOVE to a named AE.

Shared by the active collection job (:mod:`profiles.dicom.collect`) and
on-demand retrieval (:mod:`profiles.dicom.ondemand`). Every association sets
TCP_NODELAY on its socket (pynetdicom never does; each C-STORE would otherwise
wait ~90 ms on Nagle and delayed ACK). C-GET writes each received instance's
bytes as a Part 10 file without decoding them, then hands the path to a sink
(``Archive.store`` for collection): the archive owns the file from there.

Remote failures become :class:`DicomError` (association refused or aborted,
a failure status), never a pynetdicom exception the caller has to know.
"""

from __future__ import annotations

import logging
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, _config, build_role, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode_file_meta

from esb.errors import DicomError
from profiles.dicom.config import RemoteAe

log = logging.getLogger("esb.dicom.scu")

# Process-wide, as adapters/dicom/network.py sets them for the engine: pynetdicom logs request and
# response identifiers at INFO otherwise, and they hold patient data.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False

#: Study Root Query/Retrieve Information Model (PS3.4 C.6.2)
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

#: what we accept for instances a peer sends us: stored as received, never transcoded here
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old modalities)
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
]
#: a presentation context per SOP class; 128 in all, one goes to the C-GET model itself
MAX_STORAGE_CONTEXTS = 127
MAX_PDU = 0  # no limit: large PDUs for images
SUCCESS, PENDING = 0x0000, (0xFF00, 0xFF01)
#: C-GET / C-MOVE final statuses that still mean "some sub-operations done": warning, cancel
PARTIAL = (0xB000, 0xFE00)


def nodelay(event: evt.Event) -> None:
    """An EVT_CONN_OPEN handler: TCP_NODELAY on the association's socket (see the module doc)."""
    sock = event.assoc.dul.socket.socket if event.assoc.dul.socket else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@contextmanager
def associated(
    ae: AE, remote: RemoteAe, *, roles: Sequence[Any] = (), handlers: Sequence[Any] = ()
) -> Iterator[Association]:
    """An association with ``remote`` (TCP_NODELAY), released afterwards; DicomError 0xA801 when refused."""
    assoc = ae.associate(
        remote.host,
        remote.port,
        ae_title=remote.ae_title,
        ext_neg=list(roles),
        evt_handlers=[(evt.EVT_CONN_OPEN, nodelay), *handlers],
    )
    if not assoc.is_established:
        where = f"{remote.ae_title} at {remote.host}:{remote.port}"
        raise DicomError(f"{where} refused or did not answer the association", status=0xA801)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


@dataclass(frozen=True)
class RetrieveResult:
    """The final C-GET / C-MOVE counts; ``failed`` lists SOP Instance UIDs the peer named, when it did."""

    status: int
    completed: int
    failed: int
    warning: int
    failed_uids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS and self.failed == 0


Sink = Callable[[Path], None]


class QrScu:
    """Calls one remote AE as ``local_ae``; one association per operation (see :meth:`find`)."""

    def __init__(self, remote: RemoteAe, *, local_ae: str, spool_dir: Path, timeout: float = 60.0) -> None:
        self.remote = remote
        self.local_ae = local_ae
        self.spool_dir = spool_dir
        self.timeout = timeout

    def _ae(self) -> AE:
        ae = AE(ae_title=self.local_ae)
        ae.maximum_pdu_size = MAX_PDU
        for name in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
            setattr(ae, name, self.timeout)
        return ae

    def _associate(
        self, ae: AE, *, roles: Sequence[Any] = (), handlers: Sequence[Any] = ()
    ) -> AbstractContextManager[Association]:
        return associated(ae, self.remote, roles=roles, handlers=handlers)

    def find(self, identifier: Dataset) -> list[Dataset]:
        """One C-FIND (Study Root) on a fresh association.

        Not on a kept one: pynetdicom 3.0 drops about one response in a hundred
        when requests follow each other on an association (its reactor thread
        takes a response meant for the next request, pynetdicom issue #875);
        on a fresh association none was lost in a thousand. In an engine
        process :class:`adapters.dicom.reactors.Checkpoint` closes that race;
        the fresh association stays, as it holds without the patch too.
        """
        ae = self._ae()
        ae.add_requested_context(STUDY_ROOT_FIND)
        with self._associate(ae) as assoc:
            return self._find(assoc, identifier)

    def _find(self, assoc: Association, identifier: Dataset) -> list[Dataset]:
        matches: list[Dataset] = []
        for status, found in assoc.send_c_find(identifier, STUDY_ROOT_FIND):
            code = _status(status, "C-FIND", self.remote.ae_title)
            if code in PENDING and found is not None:
                matches.append(found)
            elif code not in PENDING:
                if code != SUCCESS:
                    raise DicomError(f"C-FIND on {self.remote.ae_title} failed with status 0x{code:04X}", status=code)
        return matches

    def get(self, identifier: Dataset, sop_classes: Sequence[str], sink: Sink) -> RetrieveResult:
        """C-GET ``identifier``: each instance the peer sends is written to a spool file and given to ``sink``.

        ``sop_classes`` are the storage classes to offer (the study's, when the
        peer told us); empty offers the usual storage classes. A sink raising
        :class:`DicomError` answers that C-STORE with its status and the peer
        counts it as failed; the spool file is removed if the sink left it.
        """
        ae = self._ae()
        ae.add_requested_context(STUDY_ROOT_GET)
        classes = list(dict.fromkeys(sop_classes)) or [str(cx.abstract_syntax) for cx in StoragePresentationContexts]
        for sop_class in classes[:MAX_STORAGE_CONTEXTS]:
            ae.add_requested_context(sop_class, TRANSFER_SYNTAXES)
        roles = [build_role(sop_class, scp_role=True) for sop_class in classes[:MAX_STORAGE_CONTEXTS]]
        handler = (evt.EVT_C_STORE, self._on_store, [sink])
        with self._associate(ae, roles=roles, handlers=[handler]) as assoc:
            return self._retrieve(assoc.send_c_get(identifier, STUDY_ROOT_GET), "C-GET")

    def move(self, identifier: Dataset, destination: str) -> RetrieveResult:
        """C-MOVE ``identifier`` to the AE titled ``destination`` (the peer must know its address)."""
        ae = self._ae()
        ae.add_requested_context(STUDY_ROOT_MOVE)
        with self._associate(ae) as assoc:
            responses = assoc.send_c_move(identifier, destination, STUDY_ROOT_MOVE)
            return self._retrieve(responses, "C-MOVE")

    def _retrieve(self, responses: Iterator[tuple[Dataset, Dataset | None]], operation: str) -> RetrieveResult:
        last: Dataset | None = None
        failed_uids: tuple[str, ...] = ()
        for status, identifier in responses:
            code = _status(status, operation, self.remote.ae_title)
            last = status
            if code not in PENDING and identifier is not None and "FailedSOPInstanceUIDList" in identifier:
                value = identifier.FailedSOPInstanceUIDList
                failed_uids = tuple(str(v) for v in (value if isinstance(value, list | tuple) else [value]) if v)
        if last is None:
            raise DicomError(f"{operation} on {self.remote.ae_title}: no final response", status=0xA700)
        code = int(last.Status)
        result = RetrieveResult(
            status=code,
            completed=int(last.get("NumberOfCompletedSuboperations", 0) or 0),
            failed=int(last.get("NumberOfFailedSuboperations", 0) or 0),
            warning=int(last.get("NumberOfWarningSuboperations", 0) or 0),
            failed_uids=failed_uids,
        )
        if code != SUCCESS and code not in PARTIAL:
            if not (result.completed or result.failed):
                raise DicomError(f"{operation} on {self.remote.ae_title} failed with status 0x{code:04X}", status=code)
        return result

    def _on_store(self, event: evt.Event, sink: Sink) -> int:
        path = self.spool_dir / f"{uuid.uuid4().hex}.dcm"
        try:
            write_part10(event, path)
            sink(path)
        except DicomError as exc:
            log.warning("C-STORE from %s refused: %s", self.remote.ae_title, exc.text)
            return exc.status
        except OSError as exc:
            log.error("C-STORE from %s not written: %s", self.remote.ae_title, exc)
            return 0xA700
        finally:
            path.unlink(missing_ok=True)  # the sink moved it, or it failed
        return SUCCESS


def write_part10(event: evt.Event, path: Path) -> None:
    """The received data set behind a fresh File Meta header: the bytes as sent, pixel data never decoded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    request = cast(C_STORE, event.request)
    if request.DataSet is None:
        chunked = getattr(request, "_dataset_path", None)
        if chunked is None:
            raise DicomError("C-STORE without a data set", status=0xC000)
        # pynetdicom's STORE_RECV_CHUNKED_DATASET mode already wrote a Part 10 file
        shutil.move(str(chunked), path)
        return
    with path.open("wb") as out:
        out.write(b"\x00" * 128 + b"DICM")
        out.write(encode_file_meta(event.file_meta))
        out.write(request.DataSet.getbuffer())


def _status(status: Dataset, operation: str, peer: str) -> int:
    """The DIMSE status, or DicomError when the association went away (pynetdicom yields an empty Dataset)."""
    if "Status" not in status:
        raise DicomError(f"{operation} on {peer}: association aborted or timed out", status=0xA700)
    return int(status.Status)
