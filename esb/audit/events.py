"""Factories for every audit event the platform records (DICOM PS3.15 A.5.3, IHE ITI TF-2).

Each factory follows the table of the standard that defines its message
(named in its docstring) and takes keyword arguments only, so a call site
reads as the facts it knows: who asked, who answered, which patient. Call
sites then hand the event to :func:`esb.audit.emit`. Nothing here does I/O.

Transaction factories take two :class:`Party` values, the source and the
destination of the data (ITI TF-2 names them so); ``human`` is the
authenticated user behind a system's request (the ``auth-user`` header),
recorded as a requestor of its own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from esb.audit import codes as c
from esb.audit.model import (
    Action,
    AuditEvent,
    Code,
    Detail,
    Outcome,
    Participant,
    ParticipantObject,
    SopClassCount,
)

HOSTNAME = socket.gethostname()
#: the UserID of this engine as a process taking part in an event
APPLICATION_ID = "esb-imaging"


@dataclass(frozen=True)
class Party:
    """One end of a transaction: who (AE title, HL7 application|facility, endpoint URI) and from where."""

    user_id: str
    host: str | None = None
    alternative_user_id: str | None = None


def this_node(user_id: str = APPLICATION_ID) -> Party:
    """This process as a party: its host name and process ID (AlternativeUserID)."""
    return Party(user_id or APPLICATION_ID, HOSTNAME, str(os.getpid()))


def _participant(party: Party, role: Code | None, requestor: bool) -> Participant:
    roles = (role,) if role is not None else ()
    return Participant(party.user_id, requestor, roles, party.alternative_user_id, access_point=party.host)


def _ends(source: Party, destination: Party, *, requestor: str, human: str | None) -> tuple[Participant, ...]:
    """Source and destination with their roles; the human requestor first (search finds them)."""
    found = [
        _participant(source, c.SOURCE, requestor == "source"),
        _participant(destination, c.DESTINATION, requestor == "destination"),
    ]
    if human:
        found.insert(0, Participant(human, True))
    return tuple(found)


def patient(patient_id: str, *details: Detail) -> ParticipantObject:
    """The patient: ParticipantObjectID in HL7 CX form (``id^^^&oid&ISO``)."""
    return ParticipantObject(patient_id, c.PATIENT_NUMBER, "1", "1", name=patient_id, details=details)


def _detail(kind: str, value: str | None) -> tuple[Detail, ...]:
    return (Detail(kind, value.encode("utf-8")),) if value else ()


def _outcome(success: bool) -> Outcome:
    return 0 if success else 4


# -- application, users, security (PS3.15 A.5.3.1, A.5.3.11, A.5.3.14, A.5.3.2) ------------


def application_activity(*, started: bool, node: str, user: str | None = None, outcome: Outcome = 0) -> AuditEvent:
    """Application Activity (A.5.3.1): the engine started or stopped; ``user`` launched it, if known."""
    application = Participant(node, False, (c.APPLICATION,), str(os.getpid()), access_point=HOSTNAME)
    participants = [application]
    if user:
        participants.append(Participant(user, True, (c.APPLICATION_LAUNCHER,)))
    kind = c.APPLICATION_START if started else c.APPLICATION_STOP
    return AuditEvent(c.APPLICATION_ACTIVITY, "E", outcome, tuple(participants), type_codes=(kind,))


def user_authentication(
    *, user: str, success: bool, peer_host: str | None, method: str, logout: bool = False
) -> AuditEvent:
    """User Authentication (A.5.3.14, ITI-20 login/logout): a person or system proving who it is."""
    participants = (
        Participant(user, True, access_point=peer_host),
        _participant(this_node(), None, False),
    )
    kind = c.LOGOUT if logout else c.LOGIN
    return AuditEvent(
        c.USER_AUTHENTICATION, "E", _outcome(success), participants, type_codes=(kind,),
        outcome_description=f"{'logout' if logout else 'login'} by {method}" + ("" if success else " refused"),
    )  # fmt: skip


def node_authentication_failure(
    *, local: str, peer_host: str, peer_port: int, reason: str, subject: str | None = None
) -> AuditEvent:
    """Security Alert, Node Authentication (A.5.3.11, ITI-19): a peer refused at TLS or by its certificate.

    ``local`` names the listener (``mllp:2575``); ``subject`` is the peer
    certificate's subject when it presented one.
    """
    peer = subject or f"{peer_host}:{peer_port}"
    participants = (
        Participant(peer, True, access_point=peer_host),
        _participant(this_node(local), None, False),
    )
    alert = ParticipantObject(peer, c.NODE_ID, "2", "13", name=peer, details=_detail("Alert Description", reason))
    return AuditEvent(
        c.SECURITY_ALERT, "E", 4, participants, (alert,), type_codes=(c.NODE_AUTHENTICATION,),
        outcome_description=reason,
    )  # fmt: skip


def security_alert(
    *, kind: str, detail: str, peer_host: str | None = None, user: str | None = None, outcome: Outcome = 4
) -> AuditEvent:
    """Security Alert (A.5.3.11): ``kind`` picks the DICOM type (``ws-security`` -> Node Authentication)
    and is recorded as a local code too, so a search can tell the kinds apart."""
    participants = [_participant(this_node(), None, False)]
    if user or peer_host:
        participants.insert(0, Participant(user or peer_host or "", True, access_point=peer_host))
    types = tuple(t for t in (c.ALERT_KINDS.get(kind), c.local(kind)) if t is not None)
    if peer_host:
        subject = ParticipantObject(peer_host, c.NODE_ID, "2", "13", name=peer_host)
    elif user:
        subject = ParticipantObject(user, c.USER_IDENTIFIER, "1", "11", name=user)
    else:
        subject = ParticipantObject(kind, c.local("alert-kind", "Alert Kind"), "2", "13", name=kind)
    subject = replace(subject, details=_detail("Alert Description", detail))
    return AuditEvent(
        c.SECURITY_ALERT, "E", outcome, tuple(participants), (subject,), type_codes=types,
        outcome_description=detail,
    )  # fmt: skip


_ACTIONS: dict[str, Action] = {
    "read": "R", "query": "R", "retrieve": "R", "write": "U", "merge": "U", "review": "U", "resend": "U",
    "replay": "U", "manage": "U", "delete": "D", "create": "C",
}  # fmt: skip


def admin_operation(
    *, user: str, permission: str, granted: bool, target: str, patient_ids: Iterable[str] = ()
) -> AuditEvent:
    """An admin CLI/API operation after its authorization decision.

    Granted on patients' data: Patient Record (A.5.3.10), Read for ``*.read``,
    Update for writes, so every read of patient data through the admin
    interfaces is in the trail. Anything else, and every refusal: Security
    Alert, Use of Restricted Function (A.5.3.11), failed when refused.
    """
    patients = tuple(patient(p) for p in dict.fromkeys(patient_ids) if p)
    participants = (Participant(user, True), _participant(this_node(), None, False))
    operation = c.local(permission, f"{permission} on {target}" if target else permission)
    if granted and patients:
        action = _ACTIONS.get(permission.rsplit(".", 1)[-1], "E")
        return AuditEvent(c.PATIENT_RECORD, action, 0, participants, patients, type_codes=(operation,))
    subject = ParticipantObject(target or permission, c.local("admin-target", "Admin Operation Target"), "2", "13",
                                name=target or permission)  # fmt: skip
    return AuditEvent(
        c.SECURITY_ALERT, "E", _outcome(granted), participants, (subject, *patients),
        type_codes=(c.USE_OF_RESTRICTED_FUNCTION, operation),
        outcome_description=None if granted else f"'{user}' may not {permission}",
    )  # fmt: skip


def audit_log_used(
    *, user: str, log_uri: str, query: str | None = None, peer_host: str | None = None, outcome: Outcome = 0
) -> AuditEvent:
    """Audit Log Used (A.5.3.2): somebody read the audit trail (``esb audit search|report``);
    ``query`` (the search's filters) is kept as a detail, so the trail says what was looked for."""
    participants = (Participant(user, True, access_point=peer_host), _participant(this_node(), None, False))
    trail = ParticipantObject(log_uri, c.URI, "2", "13", name="Security Audit Log",
                              details=_detail("QueryParameters", query))  # fmt: skip
    return AuditEvent(c.AUDIT_LOG_USED, "R", outcome, participants, (trail,))


# -- patients (ITI-8, ITI-44, ITI-9, ITI-21) -----------------------------------------------


def patient_record(
    *,
    action: Action,
    patient_id: str,
    source: Party,
    destination: Party,
    transaction: str = "ITI-8",
    message_id: str | None = None,
    outcome: Outcome = 0,
    human: str | None = None,
    description: str | None = None,
) -> AuditEvent:
    """Patient Record (A.5.3.10) for a Patient Identity Feed: C for a new patient, U for an update or
    the survivor of a merge, D for a record merged away (ITI-8: MSH-10 in the detail; ITI-44: the message id)."""
    kind = "MSH-10" if transaction == "ITI-8" else "II"
    participants = _ends(source, destination, requestor="source", human=human)
    return AuditEvent(
        c.PATIENT_RECORD, action, outcome, participants, (patient(patient_id, *_detail(kind, message_id)),),
        type_codes=(c.transaction(transaction),), outcome_description=description,
    )  # fmt: skip


def _query(
    transaction: str,
    *,
    source: Party,
    destination: Party,
    query_id: str,
    query: bytes,
    patient_ids: Sequence[str],
    details: tuple[Detail, ...],
    outcome: Outcome,
    human: str | None,
    description: str | None,
) -> AuditEvent:
    asked = ParticipantObject(query_id, c.transaction(transaction), "2", "24", query=query, details=details)
    objects = (*(patient(p) for p in dict.fromkeys(patient_ids) if p), asked)
    participants = _ends(source, destination, requestor="source", human=human)
    return AuditEvent(
        c.QUERY, "E", outcome, participants, objects, type_codes=(c.transaction(transaction),),
        outcome_description=description,
    )  # fmt: skip


def patient_query(
    *,
    transaction: Literal["ITI-9", "ITI-21"],
    source: Party,
    destination: Party,
    query: bytes,
    patient_ids: Sequence[str] = (),
    message_id: str | None = None,
    query_tag: str = "",
    outcome: Outcome = 0,
    human: str | None = None,
    description: str | None = None,
) -> AuditEvent:
    """Query over HL7 v2: ITI-9 PIX Query (``patient_ids``: the identifiers asked about) or ITI-21 Patient
    Demographics Query (``patient_ids``: those returned); ``query`` is the QPD segment."""
    return _query(
        transaction, source=source, destination=destination, query_id=query_tag or message_id or "", query=query,
        patient_ids=patient_ids, details=_detail("MSH-10", message_id), outcome=outcome, human=human,
        description=description,
    )  # fmt: skip


# -- documents (ITI-41, ITI-42, ITI-43, ITI-18) ----------------------------------------------


def document_import(
    *,
    transaction: str,
    source: Party,
    destination: Party,
    submission_set_uid: str,
    patient_id: str | None = None,
    outcome: Outcome = 0,
    human: str | None = None,
    description: str | None = None,
) -> AuditEvent:
    """Import (A.5.3.6): the repository took a submission (ITI-41) or the registry registered one (ITI-42)."""
    submission = ParticipantObject(submission_set_uid, c.SUBMISSION_SET, "2", "20", name=submission_set_uid)
    objects = (*((patient(patient_id),) if patient_id else ()), submission)
    participants = _ends(source, destination, requestor="source", human=human)
    return AuditEvent(
        c.IMPORT, "C", outcome, participants, objects, type_codes=(c.transaction(transaction),),
        outcome_description=description,
    )  # fmt: skip


@dataclass(frozen=True)
class DocumentRef:
    document_uid: str
    repository_uid: str = ""
    home_community_id: str = ""


def document_export(
    *,
    source: Party,
    destination: Party,
    documents: Sequence[DocumentRef],
    transaction: str = "ITI-43",
    patient_id: str | None = None,
    outcome: Outcome = 0,
    human: str | None = None,
    description: str | None = None,
) -> AuditEvent:
    """Export (A.5.3.5): documents left through ITI-43 Retrieve Document Set (the requestor is the destination)."""
    objects = [patient(patient_id)] if patient_id else []
    for doc in documents:
        details = _detail("Repository Unique Id", doc.repository_uid) + _detail("ihe:homeCommunityID",
                                                                                doc.home_community_id)  # fmt: skip
        objects.append(ParticipantObject(doc.document_uid, c.REPORT_NUMBER, "2", "3", name=doc.document_uid,
                                         details=details))  # fmt: skip
    participants = _ends(source, destination, requestor="destination", human=human)
    return AuditEvent(
        c.EXPORT, "R", outcome, participants, tuple(objects), type_codes=(c.transaction(transaction),),
        outcome_description=description,
    )  # fmt: skip


def registry_query(
    *,
    source: Party,
    destination: Party,
    query_id: str,
    query: bytes,
    patient_id: str | None = None,
    outcome: Outcome = 0,
    human: str | None = None,
    description: str | None = None,
) -> AuditEvent:
    """Query (ITI-18 Registry Stored Query): ``query_id`` the stored query's UUID, ``query`` the AdhocQueryRequest."""
    return _query(
        "ITI-18", source=source, destination=destination, query_id=query_id, query=query,
        patient_ids=[patient_id] if patient_id else [], details=_detail("QueryEncoding", "UTF-8"),
        outcome=outcome, human=human, description=description,
    )  # fmt: skip


# -- DICOM (A.5.3.7, A.5.3.12) --------------------------------------------------------------


def study(
    study_uid: str, sop_classes: Sequence[SopClassCount] = (), accessions: Sequence[str] = ()
) -> ParticipantObject:
    return ParticipantObject(study_uid, c.STUDY_INSTANCE_UID, "2", "3", name=study_uid,
                             sop_classes=tuple(sop_classes), accessions=tuple(accessions))  # fmt: skip


def dicom_instances_transferred(
    *,
    action: Action,
    source: Party,
    destination: Party,
    study_uid: str,
    patient_id: str,
    sop_classes: Sequence[SopClassCount],
    requestor: str = "source",
    other: Party | None = None,
    accessions: Sequence[str] = (),
    transaction: str | None = None,
    outcome: Outcome = 0,
    human: str | None = None,
    description: str | None = None,
) -> AuditEvent:
    """DICOM Instances Transferred (A.5.3.7): one study's instances between two nodes.

    C when they arrived here (C-STORE, STOW-RS), R when they went out
    (C-MOVE, C-GET, WADO, RAD-69). One event per study and association or
    request, not per instance: the counts are in the SOPClass description.
    ``requestor`` is ``source``, ``destination`` or ``other``: the ``other``
    party asked (a C-MOVE's requestor, which is neither end).
    """
    objects = (study(study_uid, sop_classes, accessions), patient(patient_id))
    participants = _ends(source, destination, requestor=requestor, human=human)
    if other is not None:
        participants += (_participant(other, None, requestor == "other"),)
    types = (c.transaction(transaction),) if transaction else ()
    return AuditEvent(
        c.INSTANCES_TRANSFERRED, action, outcome, participants, objects, type_codes=types,
        outcome_description=description,
    )  # fmt: skip


def dicom_query(
    *,
    source: Party,
    destination: Party,
    sop_class_uid: str,
    query: bytes,
    transfer_syntax: str | None = None,
    outcome: Outcome = 0,
    human: str | None = None,
    description: str | None = None,
) -> AuditEvent:
    """Query (A.5.3.12): a C-FIND (``query`` the identifier as encoded) or a QIDO-RS request (its query string)."""
    asked = ParticipantObject(sop_class_uid, c.SOP_CLASS_UID, "2", "3", query=query,
                              details=_detail("TransferSyntax", transfer_syntax))  # fmt: skip
    participants = _ends(source, destination, requestor="source", human=human)
    return AuditEvent(c.QUERY, "E", outcome, participants, (asked,), outcome_description=description)


__all__ = [
    "DocumentRef", "Party", "SopClassCount", "admin_operation", "application_activity", "audit_log_used",
    "dicom_instances_transferred", "dicom_query", "document_export", "document_import", "node_authentication_failure",
    "patient", "patient_query", "patient_record", "registry_query", "security_alert", "study", "this_node",
    "user_authentication",
]  # fmt: skip
