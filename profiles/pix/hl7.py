"""PIX Query (ITI-9, IHE ITI TF-2 3.9): QBP^Q23 in, RSP^K23 out.

The answer follows the cases of ITI TF-2 3.9.4.2.2.6:

1. patient known, identifiers in the requested domains: AA, QAK OK, one PID
   with those identifiers in PID-3 (never the queried one) and PID-5 ``~^^^^^^S``;
2. patient known, no identifier in the requested domains: AA, QAK NF, no PID;
3. patient not known in a known domain: AE, QAK AE, ERR ``QPD^1^3^1^1`` 204;
4. QPD-3 domain not known: AE, QAK AE, ERR ``QPD^1^3^1^4`` 204;
5. a QPD-4 domain not known: AE, QAK AE, one ERR ``QPD^1^4^n`` 204 per such repetition.

Case 3 can be answered AA/NF instead (``unknown_patient="nf"``) for consumers
that expect it; the TF and the IHE test tools expect AE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from esb.errors import Hl7Error
from profiles.empi.model import Domain, Identifier, PatientRecord
from transforms.hl7v2.codec import Header, V2Message, query_error_response, reply_msa, reply_msh
from transforms.hl7v2.pid import pid_segment, read_cx, same_domain, what_domains_returned
from transforms.hl7v2.writer import err_segment, join, render

MESSAGE_TYPE = "RSP^K23^RSP_K23"


@dataclass(frozen=True)
class PixQuery:
    """What a PIX Consumer asked: the patient it knows and the domains it wants IDs in."""

    #: QPD-3, the identifier the consumer knows
    identifier: Identifier
    #: QPD-4 what domains returned; empty: every domain
    domains: tuple[Domain, ...]
    #: QPD-2, echoed in QAK-1
    query_tag: str
    header: Header
    #: the QPD segment as received, echoed in the answer
    qpd: str


def parse_qbp_q23(message: str | bytes | V2Message, *, encoding: str | None = None) -> PixQuery:
    """Read a QBP^Q23; a malformed query raises :class:`Hl7Error` (answer it with :func:`rsp_k23`)."""
    msg = message if isinstance(message, V2Message) else V2Message(message, encoding)
    msg.header.expect("QBP", ("Q23",))
    qpd = msg.require("QPD", "the PIX query parameters")
    query_tag = qpd.value(2).strip()
    if not query_tag:
        raise Hl7Error("QPD-2 query tag is required", error_code="101", location="QPD^1^2")
    reps = qpd.reps(3)
    value, domain, type_code = read_cx(reps[0]) if reps else ("", Domain(), "")
    if not value:
        raise Hl7Error("QPD-3 person identifier needs an ID (CX-1)", error_code="101", location="QPD^1^3^1^1")
    if not domain.key:
        raise Hl7Error(
            "QPD-3 person identifier needs its assigning authority (CX-4)", error_code="101", location="QPD^1^3^1^4"
        )
    domains = what_domains_returned(qpd.reps(4), "QPD^1^4")
    return PixQuery(
        identifier=Identifier(value, domain, type_code),
        domains=domains,
        query_tag=query_tag,
        header=msg.header,
        qpd=qpd.render(),
    )


def domain_errors(query: PixQuery, is_known: Callable[[Domain], bool]) -> list[Hl7Error]:
    """Cases 4 and 5: the query's domains that ``is_known`` does not recognize, as ERR-ready errors."""
    if not is_known(query.identifier.domain):
        return [
            Hl7Error(
                "QPD-3 assigning authority is not a domain of this PIX Manager",
                error_code="204",
                location="QPD^1^3^1^4",
            )
        ]
    return [
        Hl7Error(
            f"QPD-4 repetition {number} is not a domain of this PIX Manager",
            error_code="204",
            location=f"QPD^1^4^{number}",
        )
        for number, domain in enumerate(query.domains, start=1)
        if not is_known(domain)
    ]


def unknown_patient_error() -> Hl7Error:
    """Case 3: the identifier is not known in its (known) domain."""
    return Hl7Error("QPD-3 identifier is not known in its domain", error_code="204", location="QPD^1^3^1^1")


def rsp_k23(
    query: PixQuery,
    identifiers: Sequence[Identifier] | None,
    *,
    errors: Sequence[Hl7Error] = (),
    unknown_patient: Literal["error", "nf"] = "error",
    application: str = "",
    facility: str = "",
) -> str:
    """The RSP^K23 for ``query``.

    ``identifiers``: every identifier of the person (the master ID among them),
    None when the queried identifier is not known. They are filtered here to the
    requested domains, without the queried identifier. ``errors`` (from
    :func:`domain_errors` or a parse) make the answer AE (AR if one says so).
    ``application``/``facility`` (wire HD) default to the request's MSH-5/MSH-6.
    """
    errors = list(errors)
    if not errors and identifiers is None and unknown_patient == "error":
        errors.append(unknown_patient_error())
    returned = [] if identifiers is None else _returned(query, identifiers)
    if errors:
        ack = "AR" if any(e.ack_code == "AR" for e in errors) else "AE"
        status = ack
    else:
        ack, status = "AA", ("OK" if returned else "NF")
    segments = [
        reply_msh(query.header, MESSAGE_TYPE, application=application, facility=facility),
        reply_msa(query.header, ack),
        *(err_segment(e) for e in errors),
        render("QAK", [query.query_tag, status]),
        query.qpd,
    ]
    if status == "OK":
        segments.append(pid_segment(PatientRecord(), identifiers=returned, pseudonymous=True))
    return join(segments)


def _returned(query: PixQuery, identifiers: Sequence[Identifier]) -> list[Identifier]:
    asked = query.identifier
    out: list[Identifier] = []
    for identifier in identifiers:
        if identifier.value == asked.value and same_domain(identifier.domain, asked.domain):
            continue
        if query.domains and not any(same_domain(identifier.domain, d) for d in query.domains):
            continue
        if identifier not in out:
            out.append(identifier)
    return out


def error_response(request: str | bytes | V2Message, error: Hl7Error, *, application: str = "") -> str | None:
    """The RSP^K23 (AE/AR with ERR) for a QBP^Q23 that failed to parse; None when it is no readable QBP^Q23."""
    return query_error_response(request, error, ("QBP", "Q23"), MESSAGE_TYPE, application=application)
