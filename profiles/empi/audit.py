"""The EMPI's audit records (IHE ITI TF-2): Patient Identity Feed (ITI-8), PIX (ITI-9), PDQ (ITI-21).

Called by :mod:`profiles.empi.service` once it knows the outcome; each
function turns what the service has at hand (the exchange, the parsed
request, the result) into events and emits them. Patients are named in HL7
CX form with their assigning authority, as the ITI audit messages want.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from esb.audit import emit, events, guarded
from esb.audit.hl7 import parties, segment
from esb.audit.model import Action
from esb.exchange import Exchange
from profiles.empi.index import FeedResult
from profiles.empi.model import Identifier


def cx(identifier: Identifier) -> str:
    """``value^^^namespace&oid&ISO`` (HL7 CX-1 and CX-4)."""
    d = identifier.domain
    authority = d.namespace if not d.universal_id else f"{d.namespace}&{d.universal_id}&{d.universal_id_type}"
    return f"{identifier.value}^^^{authority}"


def _changes(event: Any, result: FeedResult | None) -> list[tuple[Action, Identifier]]:
    """The patient records a feed touched and how: C new, U changed or surviving a merge, D merged away."""
    kind = event.kind
    record: Identifier = event.record.identifiers[0]
    if kind == "merge":
        return [("U", record), *(("D", prior) for prior in event.prior_identifiers)]
    if kind in ("link", "unlink"):
        return [("U", record), ("U", event.other.identifiers[0])]
    if kind == "delete":
        return [("D", record)]
    created = result is not None and any(e.kind == "registered" for e in result.events)
    return [("C" if created else "U", record)]


@guarded
def feed(exchange: Exchange, event: Any, result: FeedResult | None, error: Exception | None = None) -> None:
    """ITI-8: one Patient Record event per patient record the feed created, updated or merged away."""
    source, destination, head = parties(exchange.body, exchange.headers)
    for action, identifier in _changes(event, result):
        emit(events.patient_record(
            action=action, patient_id=cx(identifier), source=source, destination=destination, transaction="ITI-8",
            message_id=head.control_id, outcome=4 if error else 0, human=exchange.headers.get("auth-user"),
            description=str(error) if error else None,
        ))  # fmt: skip


def _query(exchange: Exchange, transaction: Literal["ITI-9", "ITI-21"], patients: Iterable[str], failed: bool) -> None:
    source, destination, head = parties(exchange.body, exchange.headers)
    qpd = segment(exchange.body, "QPD")
    tag = qpd.split(qpd[3:4])[2].decode("utf-8", "replace") if len(qpd) > 4 and qpd.count(qpd[3:4]) >= 2 else ""
    emit(events.patient_query(
        transaction=transaction, source=source, destination=destination, query=qpd, patient_ids=list(patients),
        message_id=head.control_id, query_tag=tag, outcome=4 if failed else 0, human=exchange.headers.get("auth-user"),
    ))  # fmt: skip


@guarded
def pix(exchange: Exchange, asked: Identifier, failed: bool) -> None:
    """ITI-9: the patient asked about (QPD-3)."""
    _query(exchange, "ITI-9", [cx(asked)], failed)


@guarded
def pdq(exchange: Exchange, returned: Sequence[Any], failed: bool = False) -> None:
    """ITI-21: the patients returned (each hit's identifiers)."""
    _query(exchange, "ITI-21", [cx(i) for hit in returned for i in hit[1]], failed)
