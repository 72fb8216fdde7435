"""The core of the master patient index: domains, registration and matching.

Every operation is one database transaction, so several engine nodes can run
it against one PostgreSQL: a patient row is locked (``FOR UPDATE``) while it
changes, identifiers are unique per domain, and nothing is kept in memory
beyond the matching model. Nothing is ever physically deleted: merge, link,
unlink, split and delete change status and links, and the history table keeps
what each step did so it can be undone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from esb.errors import EmpiError, StaleUpdateError, UnknownDomainError
from esb.journal.store import utcnow
from profiles.empi import store
from profiles.empi.config import EmpiConfig
from profiles.empi.events import EmpiEvent, EventKind
from profiles.empi.golden import golden_record
from profiles.empi.model import Domain, Identifier, PatientRecord
from profiles.empi.store import PatientRow


class MatchResultLike(Protocol):
    weight: float
    decision: str
    evidence: Any


class MatcherLike(Protocol):
    def blocking_keys(self, record: PatientRecord) -> list[str]: ...

    def score(self, a: PatientRecord, b: PatientRecord) -> Any: ...


@dataclass
class FeedResult:
    patient_id: str
    person_id: str | None
    events: list[EmpiEvent] = field(default_factory=list)


def _stale(current: str, incoming: str) -> bool:
    """HL7 timestamps compare as text once cut to the shorter precision."""
    if not current or not incoming:
        return False
    size = min(len(current), len(incoming), 14)
    return incoming[:size] < current[:size]


class IndexCore:
    def __init__(
        self,
        engine: Engine,
        config: EmpiConfig,
        matcher: MatcherLike,
        standardize: Callable[[PatientRecord], PatientRecord],
    ) -> None:
        self.engine = engine
        self.config = config
        self.matcher = matcher
        self.standardize = standardize

    # -- domains -------------------------------------------------------------------

    def setup(self) -> None:
        """Register the master domain (idempotent; run at service start)."""
        with self.engine.begin() as conn:
            if store.find_domain(conn, self.config.master_domain) is None:
                store.insert_domain(conn, self.config.master_domain, kind="master", auto=False)

    def register_domain(self, domain: Domain, description: str = "") -> None:
        with self.engine.begin() as conn:
            if store.find_domain(conn, domain) is None:
                store.insert_domain(conn, domain, kind="local", auto=False, description=description)

    def domains(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in store.all_domains(conn)]

    def _domain_key(self, conn: Connection, domain: Domain) -> str:
        key = domain.key
        if not key:
            raise UnknownDomainError("identifier without an assigning authority")
        row = store.find_domain(conn, domain)
        if row is not None:
            return str(row.key)
        if self.config.strict_domains:
            raise UnknownDomainError(f"unknown assigning authority '{key}'")
        try:
            with conn.begin_nested():
                store.insert_domain(conn, domain, kind="local", auto=True)
        except IntegrityError:
            pass  # another node registered it at the same moment
        return key

    def _known_domain(self, conn: Connection, domain: Domain) -> str:
        """For queries: an unknown domain is always an error, never registered."""
        row = store.find_domain(conn, domain)
        if row is None:
            raise UnknownDomainError(f"unknown assigning authority '{domain.key or domain.namespace}'")
        return str(row.key)

    # -- feed (ITI-8 / ITI-30) -----------------------------------------------------

    def feed(self, record: PatientRecord, *, actor: str) -> FeedResult:
        """Register or update a patient (A01/A04/A05/A08) and place it with its person."""
        std = self.standardize(record)
        with self.engine.begin() as conn:
            return self._feed(conn, std, actor)

    def _feed(self, conn: Connection, std: PatientRecord, actor: str) -> FeedResult:
        if not std.identifiers:
            raise EmpiError("the record has no patient identifier")
        primary = std.identifiers[0]
        domain_key = self._domain_key(conn, primary.domain)
        others = [(self._domain_key(conn, i.domain), i) for i in std.identifiers[1:] if i.domain.key]
        existing = store.patient_by_local(conn, domain_key, primary.value, lock=True)
        if existing is not None and existing.status == "active" and _stale(existing.event_time, std.event_time):
            raise StaleUpdateError(
                f"update of {domain_key}/{primary.value} dated {std.event_time} is older than "
                f"the one applied ({existing.event_time})"
            )
        if existing is None:
            patient_id = store.insert_patient(conn, domain_key, primary.value, std)
            kind: EventKind = "registered"
        else:
            patient_id = existing.id
            store.update_patient(conn, patient_id, record=std, status="active", merged_into=None)
            kind = "updated" if existing.status == "active" else "registered"
        store.replace_identifiers(conn, patient_id, [(domain_key, primary), *others])
        keys = self.matcher.blocking_keys(std)
        store.replace_blocking(conn, patient_id, keys)
        person_id, affected = self._place(conn, patient_id, std, keys, existing)
        self._refresh(conn, [person_id, *affected])
        store.log(conn, kind, actor, person_id=person_id, patient_id=patient_id, source=std.source)
        event = self._event(conn, kind, patient_id, person_id, affected=affected)
        return FeedResult(patient_id, person_id, [event])

    def _place(
        self, conn: Connection, patient_id: str, record: PatientRecord, keys: Sequence[str], existing: PatientRow | None
    ) -> tuple[str, list[str]]:
        """Decide the patient's person; returns it and the persons it left."""
        current = existing.person_id if existing is not None and existing.status == "active" else None
        if current and existing is not None and existing.link_kind in ("manual", "asserted"):
            return current, []
        must_link: list[str] = []
        must_not: set[str] = set()
        for row in store.active_assertions(conn, patient_id):
            other = row.patient_b if row.patient_a == patient_id else row.patient_a
            if row.kind == "must_link":
                must_link.append(other)
            else:
                must_not.add(other)
        for other_id in must_link:
            other = store.patient(conn, other_id)
            if other is not None and other.status == "active" and other.person_id:
                return self._move(conn, patient_id, current, other.person_id, "asserted", None)
        blocked = {p.person_id for p in store.patients_by_ids(conn, sorted(must_not)) if p.person_id}
        rows = store.patients_by_ids(conn, store.candidates(conn, patient_id, keys, self.config.candidate_limit))
        best: dict[str, tuple[float, Any]] = {}
        reviews: list[tuple[PatientRow, Any]] = []
        for row in rows:
            if row.person_id is None or row.person_id in blocked or row.id in must_not:
                continue
            result = self.matcher.score(record, row.record)
            if result.decision == "review":
                reviews.append((row, result))
            if row.person_id not in best or result.weight > best[row.person_id][0]:
                best[row.person_id] = (result.weight, result)
        linked = [(w, pid) for pid, (w, r) in best.items() if r.decision == "link"]
        if linked:
            weight, target = max(linked)
            return self._move(conn, patient_id, current, target, "auto", weight, reviews=reviews)
        alone = current is not None and not [p for p in store.patients_of(conn, current) if p.id != patient_id]
        target = current if alone and current else store.new_person(conn)
        return self._move(conn, patient_id, current, target, "auto", None, reviews=reviews)

    def _move(
        self,
        conn: Connection,
        patient_id: str,
        current: str | None,
        target: str,
        kind: str,
        weight: float | None,
        *,
        reviews: Sequence[tuple[PatientRow, Any]] = (),
    ) -> tuple[str, list[str]]:
        store.update_patient(conn, patient_id, person_id=target, link_kind=kind, link_weight=weight)
        for row, result in reviews:
            if row.person_id != target:
                self._open_review(conn, patient_id, row.id, result)
        if current and current != target:
            store.log(conn, "moved", "empi", person_id=current, patient_id=patient_id, to=target)
            return target, [current]
        return target, []

    def _open_review(self, conn: Connection, a: str, b: str, result: Any) -> None:
        from profiles.empi.schema import reviews

        first, second = sorted((a, b))
        evidence = [list(e) if isinstance(e, tuple) else e for e in (result.evidence or [])]
        try:
            with conn.begin_nested():
                conn.execute(
                    reviews.insert().values(
                        patient_a=first,
                        patient_b=second,
                        weight=float(result.weight),
                        evidence=evidence,
                        status="open",
                        created_at=utcnow(),
                    )  # fmt: skip
                )
        except IntegrityError:
            conn.execute(
                reviews.update()
                .where(reviews.c.patient_a == first, reviews.c.patient_b == second, reviews.c.status == "open")
                .values(weight=float(result.weight), evidence=evidence)
            )

    def _refresh(self, conn: Connection, person_ids: Sequence[str]) -> None:
        """Recompute golden records; a person left without patients is retired (kept)."""
        for person_id in dict.fromkeys(p for p in person_ids if p):
            members = store.patients_of(conn, person_id)
            if not members:
                store.update_person(conn, person_id, status="retired", golden={})
                continue
            from profiles.empi import codec

            golden = golden_record(
                [m.record for m in members], self._identifiers_of(conn, person_id, members), trust=self.config.trust
            )
            store.update_person(conn, person_id, status="active", golden=codec.to_json(golden, with_derived=False))

    def _identifiers_of(
        self, conn: Connection, person_id: str, members: Sequence[PatientRow] | None = None
    ) -> list[Identifier]:
        """Master ID first, then every active patient's identifiers (own and cross-referenced)."""
        members = store.patients_of(conn, person_id) if members is None else members
        out = [Identifier(person_id, self.config.master_domain, "PI")]
        seen = {(self.config.master_domain.key, person_id)}
        for row in store.identifiers_of(conn, [m.id for m in members]):
            if (row.domain_key, row.value) in seen:
                continue
            seen.add((row.domain_key, row.value))
            if row.d_namespace is None:
                domain = Domain(row.domain_key)
            else:
                domain = Domain(row.d_namespace, row.d_universal_id, row.d_universal_id_type)
            out.append(Identifier(row.value, domain, row.type_code or ""))
        return out

    def _event(
        self,
        conn: Connection,
        kind: EventKind,
        patient_id: str,
        person_id: str | None,
        *,
        other: Identifier | None = None,
        affected: Sequence[str] = (),
    ) -> EmpiEvent:
        row = store.patient(conn, patient_id)
        assert row is not None
        own = row.record.identifiers[0] if row.record.identifiers else Identifier(row.local_id, Domain(row.domain_key))
        identifiers = tuple(self._identifiers_of(conn, person_id)) if person_id else (own,)
        return EmpiEvent(
            kind=kind, person_id=person_id, patient=own, identifiers=identifiers, record=row.record,
            other=other, affected_persons=tuple(affected),
        )  # fmt: skip
