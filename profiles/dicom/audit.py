"""The image archive's audit records: instances in (C-STORE, STOW-RS), out (C-MOVE, C-GET, WADO, RAD-69)
and queries (C-FIND, QIDO-RS), DICOM PS3.15 A.5.3.7 and A.5.3.12.

The adapters call these with what they have at hand; every function is
:func:`esb.audit.guarded`, so a record that cannot be made never changes a
DICOM status or an HTTP answer. Incoming instances are only counted per
association (:class:`esb.audit.dicom.AssociationTransfers`): the events are
made when the association closes, off the C-STORE path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from esb.audit import emit, events, guarded
from esb.audit.codes import STUDY_ROOT_FIND
from esb.audit.dicom import AssociationTransfers, StudyTransfers, dicom_patient
from esb.audit.events import Party, this_node
from profiles.dicom.api import InstanceRef


@guarded
def stored(transfers: AssociationTransfers, event: Any, headers: dict[str, str], issuer: str, ok: bool) -> None:
    """One C-STORE (or STOW-RS part, keyed by its request) counted for its association's events."""
    assoc = event.assoc

    def parties() -> tuple[Party, Party]:  # once per association
        source = Party(headers.get("dicom-calling-ae", ""), assoc.requestor.address or None)
        return source, this_node(headers.get("dicom-called-ae", ""))

    patient = dicom_patient(headers.get("dicom-patient-id", ""), issuer)
    transfers.add(assoc, parties, headers.get("dicom-study-uid", ""), patient,
                  headers.get("dicom-sop-class-uid", ""), ok)  # fmt: skip


def closed(transfers: AssociationTransfers) -> Any:
    """An ``EVT_CONN_CLOSE`` handler: the association's studies become events."""

    @guarded
    def handler(event: Any) -> None:
        transfers.close(event.assoc)

    return handler


@guarded
def queried(event: Any) -> None:
    """A C-FIND: its information model, the identifier as the peer encoded it, the transfer syntax."""
    assoc = event.assoc
    raw = getattr(event.request, "Identifier", None)
    query = raw.getvalue() if raw is not None else b""
    emit(events.dicom_query(
        source=Party(assoc.requestor.ae_title.strip(), assoc.requestor.address or None),
        destination=this_node(assoc.acceptor.ae_title.strip()), sop_class_uid=str(event.context.abstract_syntax),
        query=query, transfer_syntax=str(event.context.transfer_syntax),
    ))  # fmt: skip


def retrieval(event: Any, destination: Any | None) -> StudyTransfers:
    """The instances a C-MOVE (``destination``: the remote AE) or C-GET (None: the requestor) sends, by study."""
    assoc = event.assoc
    requestor = Party(assoc.requestor.ae_title.strip(), assoc.requestor.address or None)
    source = this_node(assoc.acceptor.ae_title.strip())
    if destination is None:
        return StudyTransfers(action="R", source=source, destination=requestor, requestor="destination")
    target = Party(destination.ae_title, destination.host)
    return StudyTransfers(action="R", source=source, destination=target, requestor="other", other=requestor)


@guarded
def done(transfers: StudyTransfers) -> None:
    """The events of a retrieval, when its sub-operations end (completed, cancelled or failed)."""
    transfers.emit()


def patient_of_dataset(ds: Any) -> str:
    return dicom_patient(str(ds.get("PatientID", "") or ""), str(ds.get("IssuerOfPatientID", "") or ""))


def patient_of(archive: Any, study_uid: str) -> str:
    """The study's patient as the archive's index has it (CX form); "" when unknown."""
    study = getattr(archive, "study", None)
    info = study(study_uid) if study is not None else None
    return dicom_patient(info.patient_id, info.issuer) if info is not None else ""


@guarded
def sent(
    archive: Any, refs: Iterable[InstanceRef], *, source: Party, destination: Party, transaction: str | None = None
) -> None:
    """Instances that left by WADO or RAD-69: one event per study, its patient from the index."""
    transfers = StudyTransfers(action="R", source=source, destination=destination, requestor="destination",
                               transaction=transaction)  # fmt: skip
    patients: dict[str, str] = {}
    for ref in refs:
        if ref.study_uid not in patients:
            patients[ref.study_uid] = patient_of(archive, ref.study_uid)
        transfers.add(ref.study_uid, patients[ref.study_uid], ref.sop_class_uid)
    transfers.emit()


def web_parties(request: Any, base: str) -> tuple[Party, Party]:
    """This DICOMweb service (its base URL) and the HTTP client."""
    return this_node(base), Party(request.remote or "unknown", request.remote or None)


@guarded
def wado(request: Any, base: str, archive: Any, refs: Iterable[InstanceRef]) -> None:
    service, client = web_parties(request, base)
    sent(archive, refs, source=service, destination=client)


@guarded
def qido(request: Any, base: str, ok: bool) -> None:
    """A QIDO-RS search: the query string as sent (Study Root C-FIND is its DIMSE equivalent)."""
    service, client = web_parties(request, base)
    emit(events.dicom_query(
        source=client, destination=service, sop_class_uid=STUDY_ROOT_FIND,
        query=request.path_qs.encode("utf-8"), outcome=0 if ok else 4,
    ))  # fmt: skip


def stow(request: Any, base: str) -> StudyTransfers:
    """The instances one STOW-RS request stores, by study (events by :func:`done` once it is answered)."""
    service, client = web_parties(request, base)
    return StudyTransfers(action="C", source=client, destination=service)


@guarded
def stow_part(transfers: StudyTransfers, headers: dict[str, str], ok: bool) -> None:
    transfers.add(headers.get("dicom-study-uid", ""), dicom_patient(headers.get("dicom-patient-id", "")),
                  headers.get("dicom-sop-class-uid", ""), ok)  # fmt: skip


XDSI = "urn:ihe:rad:xdsi-b:2009"
XDS = "urn:ihe:iti:xds-b:2007"


@guarded
def rad69(headers: dict[str, str], archive: Any, request: Any, answer: Any) -> None:
    """RAD-69 at the Imaging Document Source: the instances the answer delivered, one event per study."""
    delivered = {
        (d.findtext(f"{{{XDS}}}DocumentUniqueId") or "").strip() for d in answer.iter(f"{{{XDS}}}DocumentResponse")
    }
    instance = getattr(archive, "instance", None)
    refs: list[InstanceRef] = []
    for study in request.iter(f"{{{XDSI}}}StudyRequest"):
        for doc in study.iter(f"{{{XDS}}}DocumentRequest", f"{{{XDSI}}}DocumentRequest"):
            uid = (doc.findtext(f"{{{etree_namespace(doc)}}}DocumentUniqueId") or "").strip()
            ref = instance(uid) if instance is not None and uid in delivered else None
            if ref is not None:
                refs.append(ref)
    source = this_node(headers.get("soap-to") or headers.get("http-path") or "xdsi")
    destination = Party(headers.get("soap-reply-to") or "http://www.w3.org/2005/08/addressing/anonymous",
                        headers.get("http-remote") or None)  # fmt: skip
    sent(archive, refs, source=source, destination=destination, transaction="RAD-69")


def etree_namespace(node: Any) -> str:
    tag = str(node.tag)
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
