"""Query/Retrieve SCP: C-FIND, C-MOVE and C-GET answered from the archive (PS3.4 C.4).

These are not journaled messages: each is answered at once from
:class:`~profiles.dicom.api.ArchiveApi` (``find``, ``select``, ``open``), whose
methods are synchronous and run here in the association's thread. Retrieved
instances go out in the transfer syntax they were stored in (read with
pydicom, pixel data untouched) when the peer accepted it, else transcoded into
one it accepted (``transcoding.py``); one that cannot be makes that
sub-operation fail alone, the others go on.
C-MOVE destinations are the ``remote_aes`` of ``config/dicom.yaml``.
Each request is authorized first (:mod:`esb.authz`: ``dicom.query`` for C-FIND,
``dicom.retrieve`` for C-MOVE and C-GET): a refusal is status 0x0124, and a
role with a modality or department scope limits the studies matched (A2.6).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from typing import Any, cast

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context

from adapters.dicom.contexts import FIND_MODELS, GET_MODELS, MOVE_MODELS, VERIFICATION, store_contexts
from adapters.dicom.transcoding import accepted_syntaxes, fit, move_association
from esb.authz import Caller, authorize_caller, directory_of
from esb.errors import PermissionDeniedError
from esb.security.peers import identity_of
from profiles.dicom import audit
from profiles.dicom.api import ArchiveApi, DicomError, InstanceRef, Level, Model
from profiles.dicom.config import RemoteAe

log = logging.getLogger("esb.adapters.dicom")

PENDING, CANCEL = 0xFF00, 0xFE00
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000
#: PS3.7 C.5 general status "Refused: Not Authorized": the caller's roles do not grant the query or retrieve
NOT_AUTHORIZED = 0x0124
LEVELS: tuple[Level, ...] = ("PATIENT", "STUDY", "SERIES", "IMAGE")
#: a SOP class no peer accepts: the stand-in for an instance that could not be read makes
#: pynetdicom count one failed sub-operation (with its SOP Instance UID) and go on
UNSENDABLE_CLASS = "1.2.826.0.1.3680043.8.498.1.99.7"

Response = tuple[int | None, Dataset | None]


def _unsendable(instance: InstanceRef) -> Dataset:
    stub = Dataset()
    stub.SOPClassUID = UNSENDABLE_CLASS
    stub.SOPInstanceUID = instance.sop_instance_uid
    stub.file_meta = FileMetaDataset()
    stub.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return stub


class QueryRetrieve:
    """The ``EVT_C_FIND``/``EVT_C_MOVE``/``EVT_C_GET`` handlers of one consumer."""

    def __init__(
        self,
        route_id: str,
        archive: Callable[[], ArchiveApi],
        remote_aes: Callable[[], dict[str, RemoteAe]],
        ae_title: str,
        association: dict[str, Any],
    ) -> None:
        self.route_id = route_id
        self.archive = archive
        self.remote_aes = remote_aes
        self.ae_title = ae_title
        #: keyword arguments for the C-MOVE sub-association (max_pdu, evt_handlers for TCP_NODELAY)
        self.association = association

    def request(self, event: Event, models: dict[str, str]) -> tuple[Level, Dataset, Model]:
        """Level, identifier and model of a Q/R request; DicomError when they do not fit together."""
        model = cast(Model, models.get(str(event.context.abstract_syntax), "study"))
        try:
            identifier = event.identifier
            level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
        except Exception as exc:
            raise DicomError(f"the identifier cannot be read: {type(exc).__name__}", status=0xA900) from None
        if level not in LEVELS:
            raise DicomError(f"QueryRetrieveLevel '{level}' is not one of {'|'.join(LEVELS)}", status=0xA900)
        if model == "study" and level == "PATIENT":
            raise DicomError("the Study Root model has no PATIENT level", status=0xA900)
        return level, identifier, model

    def find(self, event: Event) -> Iterator[Response]:
        try:
            level, identifier, model = self.request(event, FIND_MODELS)
            audit.queried(event)
            archive = self.archive()
            scope = self.scope(event, "dicom.query", archive)
            wants_retrieve_ae = "RetrieveAETitle" in identifier
            for match in archive.find(level, identifier, model=model, **scope):
                if event.is_cancelled:
                    yield CANCEL, None
                    return
                if wants_retrieve_ae and not match.get("RetrieveAETitle"):
                    match.RetrieveAETitle = self.ae_title
                yield PENDING, match
        except DicomError as exc:
            log.info("route %s: C-FIND answered 0x%04X: %s", self.route_id, exc.status, exc.text)
            yield exc.status, None
        except Exception as exc:
            # The type only above DEBUG: database errors quote their parameters (patient data).
            log.error("route %s: C-FIND failed: %s", self.route_id, type(exc).__name__)
            log.debug("route %s: C-FIND failure", self.route_id, exc_info=exc)
            yield UNABLE_TO_PROCESS, None

    def scope(self, event: Event, permission: str, archive: ArchiveApi) -> dict[str, Any]:
        """The archive call's ``scope`` keyword for the caller (none: every study), or DicomError 0x0124."""
        return granted_scope(event, permission, archive)

    def _select(self, event: Event, models: dict[str, str]) -> list[InstanceRef]:
        try:
            level, identifier, _ = self.request(event, models)
            archive = self.archive()
            return archive.select(level, identifier, **self.scope(event, "dicom.retrieve", archive))
        except DicomError:
            raise
        except Exception as exc:
            log.error("route %s: selecting instances failed: %s", self.route_id, type(exc).__name__)
            log.debug("route %s: selection failure", self.route_id, exc_info=exc)
            raise DicomError(f"selecting instances failed: {type(exc).__name__}", status=UNABLE_TO_PROCESS) from None

    def load(self, instance: InstanceRef) -> Dataset:
        """The instance as stored, or a stand-in that fails its sub-operation when it cannot be read."""
        try:
            with self.archive().open(instance) as stream:
                ds = dcmread(stream)
            if not ds.file_meta.get("TransferSyntaxUID"):
                ds.file_meta.TransferSyntaxUID = UID(instance.transfer_syntax)
            return ds
        except Exception as exc:
            log.warning("route %s: instance %s cannot be read for retrieval: %s", self.route_id,
                        instance.sop_instance_uid, type(exc).__name__)  # fmt: skip
            return _unsendable(instance)

    def _sub_operations(
        self, event: Event, instances: list[InstanceRef], *, move: bool, to: RemoteAe | None = None
    ) -> Iterator[Response]:
        sent = audit.retrieval(event, to)  # one audit event per study, when the generator ends
        try:
            for instance in instances:
                if event.is_cancelled:
                    yield CANCEL, None
                    return
                ds = self.load(instance)
                sent.add(instance.study_uid, audit.patient_of_dataset(ds), instance.sop_class_uid,
                         ok=ds.SOPClassUID != UNSENDABLE_CLASS)  # fmt: skip
                # C-GET sends over the requestor's association, C-MOVE over the one pynetdicom opened
                assoc = move_association() if move else event.assoc
                yield PENDING, fit(ds, accepted_syntaxes(assoc, instance.sop_class_uid))
        finally:
            audit.done(sent)

    def destination(self, name: str) -> RemoteAe | None:
        try:
            remotes = self.remote_aes()
        except Exception as exc:
            log.error("route %s: the DICOM config cannot be read: %s", self.route_id, exc)
            return None
        found = remotes.get(name)
        if found is None:
            found = next((r for r in remotes.values() if r.ae_title == name), None)
        return found

    def move(self, event: Event) -> Iterator[Any]:
        name = (event.move_destination or "").strip()
        remote = self.destination(name)
        if remote is None:
            log.warning("route %s: C-MOVE to unknown destination '%s' refused (0xA801)", self.route_id, name)
            yield None, None
            return
        error: DicomError | None = None
        try:
            instances = self._select(event, MOVE_MODELS)
        except DicomError as exc:
            instances, error = [], exc
        contexts = store_contexts((i.sop_class_uid, i.transfer_syntax) for i in instances)
        # An error is reported through a final response, which pynetdicom only sends on an association.
        options = {**self.association, "contexts": contexts or [_verification()]}
        yield remote.host, remote.port, options
        if error is not None:
            log.info("route %s: C-MOVE answered 0x%04X: %s", self.route_id, error.status, error.text)
            yield 1
            yield error.status, None
            return
        yield len(instances)
        yield from self._sub_operations(event, instances, move=True, to=remote)

    def get(self, event: Event) -> Iterator[Any]:
        try:
            instances = self._select(event, GET_MODELS)
        except DicomError as exc:
            log.info("route %s: C-GET answered 0x%04X: %s", self.route_id, exc.status, exc.text)
            yield 1
            yield exc.status, None
            return
        yield len(instances)
        yield from self._sub_operations(event, instances, move=False)


def _verification() -> PresentationContext:
    return build_context(VERIFICATION)


def granted_scope(event: Event, permission: str, holder: object) -> dict[str, Any]:
    """``{"scope": ...}`` for a scoped grant of the association's caller, ``{}`` for all, or DicomError 0x0124.

    The caller is the system user of the association's TLS certificate, else anonymous
    (:func:`esb.authz.authorize_caller`); the users are those of ``holder``'s database
    (the archive's, the worklist's: the engine's).
    """
    socket = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    identity = identity_of(socket) if isinstance(socket, ssl.SSLSocket) else None
    caller = Caller(
        tls_subject=identity.subject if identity else None,
        tls_fingerprint=identity.fingerprint if identity else None,
        peer_host=str(event.assoc.requestor.address or ""),
    )
    try:
        granted = authorize_caller(caller, permission, directory_of(holder))
    except PermissionDeniedError as exc:
        raise DicomError(f"access denied: {exc}", status=NOT_AUTHORIZED) from None
    return {} if granted.scopes is None else {"scope": granted.scopes}
