"""The XDS actors' audit records (IHE ITI TF-2): ITI-41 and ITI-42 Import, ITI-43 Export, ITI-18 Query.

Called by :mod:`profiles.xds.services` with the request it parsed and the
answer it built, so the record says what the peer asked for and how it went
(Success 0, PartialSuccess 4, Failure 8). The parties come from the SOAP
consumer's headers: the peer's WS-Addressing ReplyTo and address, this
endpoint's To (or path), and ``auth-user`` when the peer authenticated a user.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from esb.audit import emit, events, guarded
from esb.audit.events import DocumentRef, Party, this_node
from esb.audit.model import Outcome
from esb.exchange import Exchange
from profiles.xds import ebxml

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
_OUTCOMES: dict[str, Outcome] = {ebxml.SUCCESS: 0, ebxml.PARTIAL_SUCCESS: 4, ebxml.FAILURE: 8}


def outcome_of(answer: Any) -> Outcome:
    """The RegistryResponse status of an answer (the element itself or the one inside it)."""
    status = answer.get("status")
    if status is None:
        inner = answer.find(ebxml.q("rs", "RegistryResponse"))
        status = inner.get("status") if inner is not None else None
    return _OUTCOMES.get(status or "", 8)


def peer(exchange: Exchange) -> Party:
    headers = exchange.headers
    return Party(headers.get("soap-reply-to") or ANONYMOUS, headers.get("http-remote") or None)


def endpoint(exchange: Exchange) -> Party:
    headers = exchange.headers
    return this_node(headers.get("soap-to") or headers.get("http-path") or "xds")


def _external_id(request: Any, scheme: str) -> str | None:
    for node in request.iter(ebxml.q("rim", "ExternalIdentifier")):
        if node.get("identificationScheme") == scheme:
            return str(node.get("value") or "") or None
    return None


def _text(parent: Any, local: str) -> str:
    return (parent.findtext(ebxml.q("xds", local)) or "").strip()


@guarded
def imported(transaction: str, exchange: Exchange, request: Any, answer: Any) -> None:
    """ITI-41 at the repository, ITI-42 at the registry: Import of one submission set."""
    emit(events.document_import(
        transaction=transaction, source=peer(exchange), destination=endpoint(exchange),
        submission_set_uid=_external_id(request, ebxml.SS_UNIQUE_ID) or "",
        patient_id=_external_id(request, ebxml.SS_PATIENT_ID), outcome=outcome_of(answer),
        human=exchange.headers.get("auth-user"),
    ))  # fmt: skip


@guarded
def exported(exchange: Exchange, request: Any, answer: Any) -> None:
    """ITI-43 at the repository: Export of the documents that went out (those asked for, when none did)."""
    sent = [
        DocumentRef(_text(r, "DocumentUniqueId"), _text(r, "RepositoryUniqueId"), _text(r, "HomeCommunityId"))
        for r in answer.iterfind(ebxml.q("xds", "DocumentResponse"))
    ]
    if not sent:
        sent = [
            DocumentRef(_text(r, "DocumentUniqueId"), _text(r, "RepositoryUniqueId"), _text(r, "HomeCommunityId"))
            for r in request.iterfind(ebxml.q("xds", "DocumentRequest"))
        ]
    emit(events.document_export(
        source=endpoint(exchange), destination=peer(exchange), documents=sent, outcome=outcome_of(answer),
        human=exchange.headers.get("auth-user"),
    ))  # fmt: skip


@guarded
def queried(exchange: Exchange, request: Any, answer: Any) -> None:
    """ITI-18 at the registry: the stored query, its patient (if it names one) and the request as sent."""
    query = request.find(ebxml.q("rim", "AdhocQuery"))
    query_id = query.get("id", "") if query is not None else ""
    patient = None
    for slot in request.iter(ebxml.q("rim", "Slot")):
        if slot.get("name") == "$XDSDocumentEntryPatientId":
            value = slot.findtext(f"{ebxml.q('rim', 'ValueList')}/{ebxml.q('rim', 'Value')}") or ""
            patient = value.strip().strip("'") or None
    emit(events.registry_query(
        source=peer(exchange), destination=endpoint(exchange), query_id=query_id,
        query=etree.tostring(request, encoding="utf-8"), patient_id=patient, outcome=outcome_of(answer),
        human=exchange.headers.get("auth-user"),
    ))  # fmt: skip
