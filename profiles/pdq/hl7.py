"""Patient Demographics Query (ITI-21, IHE ITI TF-2 3.21): QBP^Q22 and QCN^J01 in, RSP^K22 out.

QPD-3 holds ``@PID.x.y^value`` pairs; they are read into :class:`PdqQuery`
with semantic field names (``family``, ``birth_date``, ``identifier.namespace``
...), so the EMPI search never sees HL7 paths. ``*`` in a value is a wildcard
(:func:`matcher`, :func:`like`). RCP-2 limits the hits per answer; when more
remain the answer carries DSC with a continuation pointer, the consumer asks
again with that pointer in DSC-1 and the same query tag, or cancels with
QCN^J01 (answered ACK^J01). Where the query state lives (it must survive the
node that answered) is the EMPI's business: it hands the pointer in.

Answers per ITI TF-2 3.21.4.2.2.8: hits AA/OK with one PID (+QRI) each; none
AA/NF; a QPD-8 domain not known AE with ERR ``QPD^1^8^n`` 204.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from esb.errors import Hl7Error
from profiles.empi.model import Domain, Identifier, PatientRecord
from transforms.hl7v2.codec import Header, Segment, V2Message, query_error_response, reply_msa, reply_msh
from transforms.hl7v2.pid import (
    DEFAULT_OPTIONS,
    NATIONAL_ID_DOMAIN,
    PidOptions,
    is_national,
    pid_segment,
    same_domain,
    what_domains_returned,
)
from transforms.hl7v2.writer import Raw, err_segment, join, render

MESSAGE_TYPE = "RSP^K22^RSP_K21"

#: one hit: the patient, the identifiers to put in PID-3, its match score (QRI-1) or None
Hit: TypeAlias = tuple[PatientRecord, Sequence[Identifier], float | None]

#: QPD-3 field paths (trailing ``.1`` dropped) -> the names a PdqQuery uses
PDQ_FIELDS: dict[str, str] = {
    "PID.3": "identifier",
    "PID.3.4": "identifier.namespace",
    "PID.3.4.2": "identifier.universal_id",
    "PID.3.4.3": "identifier.universal_id_type",
    "PID.3.5": "identifier.type_code",
    "PID.5": "family",
    "PID.5.2": "given",
    "PID.5.3": "middle",
    "PID.5.4": "suffix",
    "PID.5.5": "prefix",
    "PID.6": "mother_family",
    "PID.6.2": "mother_given",
    "PID.7": "birth_date",
    "PID.8": "sex",
    "PID.10": "race",
    "PID.11": "street",
    "PID.11.3": "city",
    "PID.11.4": "state",
    "PID.11.5": "postal_code",
    "PID.11.6": "country",
    "PID.13": "phone",
    "PID.13.12": "phone",
    "PID.14": "phone",
    "PID.16": "marital_status",
    "PID.18": "account_number",
    "PID.19": "national_id",
    "PID.21": "mother_identifier",
    "PID.22": "ethnic_group",
    "PID.28": "nationality",
}
_HD_PARTS = ("identifier.namespace", "identifier.universal_id", "identifier.universal_id_type")
_QUERY_DATE = re.compile(r"(\d{4})-?(\d{2})?-?(\d{2})?\d*")


@dataclass(frozen=True)
class PdqQuery:
    """What a PDQ Consumer asked for."""

    #: normalized field name (see PDQ_FIELDS) -> value pattern (``*`` wildcard)
    fields: dict[str, str]
    #: QPD-8 what domains returned; empty: every domain
    domains: tuple[Domain, ...]
    #: RCP-2 quantity limited request (records); None: no limit asked
    limit: int | None
    #: QPD-2, echoed in QAK-1; with ``continuation`` it names the query being continued
    query_tag: str
    #: DSC-1 of a follow-up request; "" for a new query
    continuation: str = ""
    #: QPD-4 search confidence threshold of the Find Candidates query, when sent
    threshold: float | None = None
    header: Header | None = field(default=None, compare=False)
    #: QPD-1 and the whole QPD as received (echoed in QAK-3 and the answer)
    query_name: str = ""
    qpd: str = ""


@dataclass(frozen=True)
class PdqCancel:
    """QCN^J01: forget the continuation state of ``query_tag``."""

    query_tag: str
    query_name: str
    header: Header


def _canonical(path: str) -> str:
    parts = path.strip().lstrip("@").upper().split(".")
    while len(parts) > 2 and parts[-1] == "1":
        parts.pop()
    return ".".join(parts)


def _parameters(qpd: Segment, options: PidOptions) -> dict[str, str]:
    fields: dict[str, str] = {}
    for number, rep in enumerate(qpd.reps(3), start=1):
        path = rep[0][0] if rep else ""
        name = PDQ_FIELDS.get(_canonical(path))
        if name is None:
            raise Hl7Error(
                f"QPD-3 repetition {number}: unsupported query parameter {path[:20]!r} (supported: @PID.3, 5, 6, 7, "
                "8, 10, 11, 13, 14, 16, 18, 19, 21, 22, 28 and their components)",
                error_code="103",
                location=f"QPD^1^3^{number}^1",
            )
        subs = [s.strip() for s in rep[1]] if len(rep) > 1 else []
        if name == "identifier.namespace" and len(subs) > 1:
            subs[2:] = [s.upper() for s in subs[2:]]
            fields.update({k: v for k, v in zip(_HD_PARTS, subs, strict=False) if v})
            continue
        value = "&".join(subs).strip("&")
        if not value:
            continue
        if name == "birth_date":
            match = _QUERY_DATE.fullmatch(value)
            if match is None:
                raise Hl7Error(
                    f"QPD-3 repetition {number}: @PID.7 must be a date YYYY[MM[DD]] (got {len(value)} characters)",
                    error_code="102",
                    location=f"QPD^1^3^{number}^2",
                )
            value = "".join(g for g in match.groups() if g)
        elif name in ("sex", "identifier.type_code", "identifier.universal_id_type"):
            value = value.upper()
        fields[name] = value
    authority = Domain(*(fields.get(k, "") for k in _HD_PARTS))
    if "identifier" in fields and is_national(authority, fields.get("identifier.type_code", ""), options):
        fields["national_id"] = fields.pop("identifier")
        for key in (*_HD_PARTS, "identifier.type_code"):
            fields.pop(key, None)
    return fields


def _limit(rcp: Segment | None) -> int | None:
    if rcp is None:
        return None
    quantity = rcp.value(2, 1, 1).strip()
    units = rcp.value(2, 1, 2).strip().upper()
    if not quantity:
        return None
    if not quantity.isdigit() or int(quantity) == 0:
        raise Hl7Error(
            "RCP-2 quantity limited request must be a positive whole number",
            error_code="102",
            location="RCP^1^2^1^1",
        )
    if units not in ("", "RD"):
        raise Hl7Error(
            f"RCP-2 quantity units must be RD (records, got {units[:5]!r})", error_code="103", location="RCP^1^2^1^2"
        )
    return int(quantity)


def parse_qbp_q22(
    message: str | bytes | V2Message, *, options: PidOptions = DEFAULT_OPTIONS, encoding: str | None = None
) -> PdqQuery:
    """Read a QBP^Q22 (a new query or, with DSC, the continuation of one)."""
    msg = message if isinstance(message, V2Message) else V2Message(message, encoding)
    msg.header.expect("QBP", ("Q22",))
    qpd = msg.require("QPD", "the PDQ query parameters")
    query_tag = qpd.value(2).strip()
    if not query_tag:
        raise Hl7Error("QPD-2 query tag is required", error_code="101", location="QPD^1^2")
    fields = _parameters(qpd, options)
    dsc = msg.first("DSC")
    continuation = dsc.value(1).strip() if dsc is not None else ""
    if not fields and not continuation:
        raise Hl7Error("QPD-3 needs at least one @PID query parameter", error_code="101", location="QPD^1^3")
    domains = what_domains_returned(qpd.reps(8), "QPD^1^8")
    threshold_text = qpd.value(4).strip()
    try:
        threshold = float(threshold_text) if threshold_text else None
    except ValueError:
        threshold = None
    return PdqQuery(
        fields=fields,
        domains=domains,
        limit=_limit(msg.first("RCP")),
        query_tag=query_tag,
        continuation=continuation,
        threshold=threshold,
        header=msg.header,
        query_name=qpd.wire(1),
        qpd=qpd.render(),
    )


def parse_qcn_j01(message: str | bytes | V2Message, *, encoding: str | None = None) -> PdqCancel:
    """Read a QCN^J01 cancel query."""
    msg = message if isinstance(message, V2Message) else V2Message(message, encoding)
    msg.header.expect("QCN", ("J01",))
    qid = msg.require("QID", "the query to cancel")
    query_tag = qid.value(1).strip()
    if not query_tag:
        raise Hl7Error("QID-1 query tag is required", error_code="101", location="QID^1^1")
    return PdqCancel(query_tag=query_tag, query_name=qid.wire(2), header=msg.header)


def ack_j01(cancel: PdqCancel, *, application: str = "", facility: str = "") -> str:
    """The ACK^J01 to a QCN^J01 (cancelling an unknown or finished query is accepted too)."""
    return join(
        [
            reply_msh(cancel.header, "ACK^J01^ACK", application=application, facility=facility),
            reply_msa(cancel.header, "AA"),
        ]
    )


def error_response(request: str | bytes | V2Message, error: Hl7Error, *, application: str = "") -> str | None:
    """The RSP^K22 (AE/AR with ERR) for a QBP^Q22 that failed to parse; None when it is no readable QBP^Q22."""
    return query_error_response(request, error, ("QBP", "Q22"), MESSAGE_TYPE, application=application)


def domain_errors(query: PdqQuery, is_known: Callable[[Domain], bool]) -> list[Hl7Error]:
    """QPD-8 domains the supplier does not know (ITI-21 case 3), as ERR-ready errors."""
    return [
        Hl7Error(
            f"QPD-8 repetition {number} is not a domain of this PDQ Supplier",
            error_code="204",
            location=f"QPD^1^8^{number}",
        )
        for number, domain in enumerate(query.domains, start=1)
        if not is_known(domain)
    ]


def rsp_k22(
    query: PdqQuery,
    hits: Sequence[Hit],
    *,
    remaining: int = 0,
    continuation: str = "",
    errors: Sequence[Hl7Error] = (),
    algorithm: str = "",
    national_id_domain: Domain | None = NATIONAL_ID_DOMAIN,
    application: str = "",
    facility: str = "",
) -> str:
    """The RSP^K22 for ``query``: this batch of ``hits`` (at most ``query.limit``), best first.

    ``remaining`` hits are left for a continuation whose pointer is
    ``continuation`` (DSC-1, DSC-2 ``I``); give both or neither. PID-3 holds the
    hit's identifiers in the requested domains; a hit with none there is left
    out (TF: patients without an identifier in a requested domain are not
    returned). The national ID is a demographic: it is added to PID-3 (type NI
    in ``national_id_domain``) like an identifier of that domain. A score goes
    to QRI-1, ``algorithm`` to QRI-3. ``errors`` make the answer AE (AR if one
    says so) without hits.
    """
    if query.header is None:
        raise ValueError("rsp_k22 needs the PdqQuery parsed from a request (its header is missing)")
    rows: list[tuple[PatientRecord, list[Identifier], float | None]] = []
    for record, identifiers, score in [] if errors else hits:
        if record.national_id and national_id_domain is not None:
            identifiers = [*identifiers, Identifier(record.national_id, national_id_domain, "NI")]
        ids = [
            i
            for i in dict.fromkeys(identifiers)
            if not query.domains or any(same_domain(i.domain, d) for d in query.domains)
        ]
        if ids:
            rows.append((record, ids, score))
    if errors:
        ack = "AR" if any(e.ack_code == "AR" for e in errors) else "AE"
        status = ack
    else:
        ack, status = "AA", ("OK" if rows else "NF")
    counts = ["", "", ""] if errors else [str(len(rows) + remaining), str(len(rows)), str(remaining)]

    segments = [
        reply_msh(query.header, MESSAGE_TYPE, application=application, facility=facility),
        reply_msa(query.header, ack),
        *(err_segment(e) for e in errors),
        render("QAK", [query.query_tag, status, Raw(query.query_name), *counts]),
        query.qpd,
    ]
    for number, (record, ids, score) in enumerate(rows, start=1):
        segments.append(pid_segment(record, identifiers=ids, set_id=str(number)))
        if score is not None:
            segments.append(render("QRI", [_number(score), "", [[algorithm]]]))
    if continuation and rows and remaining:
        segments.append(render("DSC", [continuation, "I"]))
    return join(segments)


def _number(score: float) -> str:
    return f"{score:.4f}".rstrip("0").rstrip(".") or "0"


def matcher(pattern: str) -> re.Pattern[str]:
    """A case-insensitive regex for a PDQ value: ``*`` matches any run of characters, the rest literally."""
    return re.compile("".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)), re.I)


def like(pattern: str, escape: str = "\\") -> str:
    """A SQL LIKE pattern for a PDQ value (``*`` -> ``%``; ``%``, ``_`` and the escape escaped)."""
    out = pattern.replace(escape, escape * 2).replace("%", escape + "%").replace("_", escape + "_")
    return out.replace("*", "%")


def is_wildcard(pattern: str) -> bool:
    return "*" in pattern
