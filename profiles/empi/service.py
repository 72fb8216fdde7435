"""``service:empi/...``: the EMPI hosted on the bus, with its HL7 v2 faces.

Operations (each a request-reply on the exchange body):

- ``feed``: ITI-8 / ITI-30 ADT (A01 A04 A05 A08 A28 A31 A40 A24 A37 A23 A29);
  the events go to the listeners as deliveries committed with the message.
- ``pix-query``: ITI-9 QBP^Q23 -> RSP^K23.
- ``pdq-query``: ITI-21 QBP^Q22 -> RSP^K22 (continuation by DSC), QCN^J01 -> ACK^J01.

Index work is synchronous SQLAlchemy, run in worker threads. Refusals become
:class:`Hl7Error`, which the MLLP adapter answers as AE/AR with ERR.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from esb.authz import authorize_exchange, directory
from esb.components import Service
from esb.errors import (
    EmpiError,
    Hl7Error,
    PermissionDeniedError,
    StaleUpdateError,
    UnknownDomainError,
    UnknownPatientError,
)
from esb.exchange import Exchange
from esb.runtime.pipeline import SERVICE_DELIVERIES
from profiles.empi import audit
from profiles.empi.config import EmpiConfig, load_empi_config
from profiles.empi.events import EmpiEvent
from profiles.empi.index import FeedResult
from profiles.empi.listeners import Listener, deliveries_for, load_listeners
from profiles.empi.model import Domain, PatientRecord
from profiles.empi.mpi import MasterPatientIndex

#: PDQ answers never hold more than this many persons, continuation or not
PDQ_MAX_RESULTS = 1000


def build_index(engine: Any, config: EmpiConfig | None = None) -> MasterPatientIndex:
    """The index with the configured matching model and the standardizer with the deployment's code maps."""
    from profiles.empi.matching import Matcher, load_model
    from profiles.empi.standardize import standardize
    from profiles.empi.standardize.codes import CodeMaps

    config = config or load_empi_config()
    matcher = Matcher(load_model(config.matching_model))
    # loaded once here, so a broken override file stops the service at start, not at the first feed
    codes = CodeMaps.load(config.code_maps) if config.code_maps else None

    def standardize_record(record: PatientRecord) -> PatientRecord:
        return standardize(record, codes=codes)

    return MasterPatientIndex(engine, config, matcher, standardize_record)


def as_hl7_error(error: EmpiError, *, location: str = "PID^1^3^1^4") -> Hl7Error:
    """EMPI refusals in HL7 terms (table 0357)."""
    if isinstance(error, UnknownDomainError):
        return Hl7Error(str(error), error_code="204", location=location)
    if isinstance(error, UnknownPatientError):
        return Hl7Error(str(error), error_code="204", location=location.replace("^4", "^1"))
    if isinstance(error, StaleUpdateError):
        return Hl7Error(str(error), error_code="207", location="EVN^1^2")
    return Hl7Error(str(error), error_code="207")


class EmpiService(Service):
    operations: ClassVar[tuple[str, ...]] = ("feed", "pix-query", "pdq-query")

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.index: MasterPatientIndex | None = None
        self.listeners: list[Listener] = []
        self.config = load_empi_config()

    async def start(self) -> None:
        journal = self.context.journal
        if journal is None:
            raise RuntimeError("service:empi needs the engine's database")
        self.index = await asyncio.to_thread(build_index, journal.engine, self.config)
        await asyncio.to_thread(self.index.setup)
        path = self.config.listeners_file
        self.listeners = load_listeners(Path(path)) if path else []
        for listener in self.listeners:  # every node knows each listener's password before it delivers
            self.context.stored_destination(listener.uri)

    async def call(self, operation: str, exchange: Exchange) -> Exchange | None:
        if self.index is None:
            raise RuntimeError("service:empi was not started")
        handler: Callable[[Exchange], Any] = {
            "feed": self._feed,
            "pix-query": self._pix,
            "pdq-query": self._pdq,
        }[operation]
        return await asyncio.to_thread(handler, exchange)

    # -- ITI-8 / ITI-30 ------------------------------------------------------------

    def _feed(self, exchange: Exchange) -> Exchange | None:
        from transforms.hl7v2.adt import parse_feed

        assert self.index is not None
        event = parse_feed(exchange.body)
        actor = event.sending_system or "feed"
        try:
            result = self._apply(event, actor)
        except EmpiError as exc:
            audit.feed(exchange, event, None, exc)
            location = (
                "MRG^1^1^1^4" if event.kind == "merge" and isinstance(exc, UnknownPatientError) else "PID^1^3^1^4"
            )
            raise as_hl7_error(exc, location=location) from exc
        audit.feed(exchange, event, result)
        exchange.headers["empi-person"] = result.person_id or ""
        exchange.headers["empi-event"] = ",".join(e.kind for e in result.events)
        exchange.properties[SERVICE_DELIVERIES] = deliveries_for(result.events, self.listeners, self._hl7_event)
        return None

    def _apply(self, event: Any, actor: str) -> FeedResult:
        assert self.index is not None
        kind = event.kind
        if kind in ("register", "update"):
            return self.index.feed(event.record, actor=actor)
        if kind == "merge":
            result: FeedResult | None = None
            for prior in event.prior_identifiers:
                step = self.index.merge(event.record, prior, actor=actor)
                result = (
                    step if result is None else FeedResult(step.patient_id, step.person_id, result.events + step.events)
                )
            if result is None:
                raise EmpiError("ADT^A40 without a prior identifier (MRG-1)")
            return result
        if kind in ("link", "unlink"):
            first, second = event.record.identifiers[0], event.other.identifiers[0]
            operation = self.index.link if kind == "link" else self.index.unlink
            return operation(first, second, actor=actor)
        if kind == "delete":
            return self.index.delete(event.record.identifiers[0], actor=actor)
        raise EmpiError(f"feed event '{kind}' is not supported")

    def _hl7_event(self, event: EmpiEvent, listener: Listener) -> bytes | None:
        from profiles.pix.iti10 import adt_a31

        master = self.config.master_domain
        domains = [Domain(namespace=d) if "." not in d else Domain(universal_id=d) for d in listener.domains]
        text = adt_a31(
            event.identifiers,
            sending_application=f"{master.namespace}^{master.universal_id}^{master.universal_id_type}",
            sending_facility="",
            receiving_application=listener.name,
            receiving_facility="",
            domains=domains,
        )
        return text.encode("utf-8") if text else None

    # -- ITI-9 ---------------------------------------------------------------------

    def _pix(self, exchange: Exchange) -> Exchange:
        from profiles.pix import hl7 as pix

        assert self.index is not None
        refused = self._refused(exchange, "pix.query", pix.error_response)
        if refused is not None:
            return refused
        try:
            query = pix.parse_qbp_q23(exchange.body)
        except Hl7Error as exc:
            answer = pix.error_response(exchange.body, exc)
            if answer is None:
                raise
            return self._reply(exchange, answer)
        errors = pix.domain_errors(query, self._is_known)
        identifiers = None
        if not errors:
            try:
                identifiers = self.index.pix(query.identifier)
            except UnknownPatientError:
                identifiers = None
        unknown: Literal["error", "nf"] = "nf" if self.config.pix_unknown_patient == "nf" else "error"
        audit.pix(exchange, query.identifier, failed=bool(errors))
        return self._reply(exchange, pix.rsp_k23(query, identifiers, errors=errors, unknown_patient=unknown))

    def _refused(
        self, exchange: Exchange, permission: str, answer: Callable[[bytes, Hl7Error], str | None]
    ) -> Exchange | None:
        """The AR answer (ERR 207, access denied) when the caller may not ``permission`` (esb.authz), else None."""
        assert self.index is not None
        try:
            authorize_exchange(exchange, permission, directory(self.index.engine))
        except PermissionDeniedError as exc:
            error = Hl7Error(f"access denied: {exc}", error_code="207", ack_code="AR")
            text = answer(exchange.body, error)
            if text is None:
                raise error from None
            return self._reply(exchange, text)
        return None

    def _is_known(self, domain: Domain) -> bool:
        assert self.index is not None
        from profiles.empi import store

        with self.index.engine.connect() as conn:
            return store.find_domain(conn, domain) is not None

    # -- ITI-21 --------------------------------------------------------------------

    def _pdq(self, exchange: Exchange) -> Exchange:
        from profiles.pdq import hl7 as pdq
        from transforms.hl7v2.codec import V2Message

        assert self.index is not None
        message = V2Message(exchange.body, None)
        if message.header.message_code.strip().upper() == "QCN":
            cancel = pdq.parse_qcn_j01(message)
            return self._reply(exchange, pdq.ack_j01(cancel))
        refused = self._refused(exchange, "pdq.query", pdq.error_response)
        if refused is not None:
            return refused
        try:
            query = pdq.parse_qbp_q22(message)
        except Hl7Error as exc:
            answer = pdq.error_response(exchange.body, exc)
            if answer is None:
                raise
            return self._reply(exchange, answer)
        errors = pdq.domain_errors(query, self._is_known)
        if errors:
            audit.pdq(exchange, [], failed=True)
            return self._reply(exchange, pdq.rsp_k22(query, [], errors=errors))
        hits = self._search(query)
        offset = int(query.continuation) if query.continuation.isdigit() else 0
        size = query.limit or PDQ_MAX_RESULTS
        batch = hits[offset : offset + size]
        remaining = max(0, len(hits) - offset - len(batch))
        pointer = str(offset + len(batch)) if remaining else ""
        rows = [(h.record, list(h.identifiers), h.score) for h in batch]
        audit.pdq(exchange, rows)
        return self._reply(exchange, pdq.rsp_k22(query, rows, remaining=remaining, continuation=pointer))

    def _search(self, query: Any) -> list[Any]:
        """PDQ fields -> an index search; the continuation pointer is an offset (stateless, any node)."""
        from profiles.empi.model import Identifier

        assert self.index is not None
        fields: dict[str, str] = dict(query.fields)
        identifier = None
        if "identifier" in fields:
            domain = Domain(
                fields.get("identifier.namespace", ""),
                fields.get("identifier.universal_id", ""),
                fields.get("identifier.universal_id_type", ""),
            )
            identifier = Identifier(fields["identifier"], domain)
        try:
            return self.index.search(
                family=fields.get("family", ""),
                given=fields.get("given", ""),
                birth_date=fields.get("birth_date", ""),
                sex=fields.get("sex", ""),
                national_id=fields.get("national_id", ""),
                identifier=identifier,
                limit=PDQ_MAX_RESULTS,
            )
        except UnknownDomainError:
            return []

    @staticmethod
    def _reply(exchange: Exchange, text: str) -> Exchange:
        reply = exchange.copy(text.encode("utf-8"))
        reply.headers["content-type"] = "application/hl7-v2"
        return reply
