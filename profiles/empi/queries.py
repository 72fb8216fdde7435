"""Reads: PIX cross-reference (A1.1), patient by local ID (A1.17), golden record (A1.18),
demographic search for PDQ (A1.19), the review queue and history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from esb.errors import UnknownPatientError
from profiles.empi import codec, store
from profiles.empi.index import IndexCore
from profiles.empi.model import Domain, Identifier, PatientRecord, PersonName
from profiles.empi.schema import history, patients, persons, reviews


@dataclass(frozen=True)
class SearchHit:
    person_id: str | None
    record: PatientRecord
    identifiers: tuple[Identifier, ...]
    score: float


def _like(value: str) -> tuple[str, bool]:
    """PDQ wildcard ``*`` -> SQL LIKE pattern; returns (pattern, is_wildcard)."""
    if "*" in value:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return escaped.replace("*", "%"), True
    return value, False


class QueriesMixin(IndexCore):
    def pix(self, identifier: Identifier, domains: Sequence[Domain] = ()) -> list[Identifier]:
        """ITI-9: the person's identifiers in ``domains`` (all when empty), the queried one excluded.

        Raises UnknownDomainError for a domain the EMPI does not know and
        UnknownPatientError when the identifier is not (or no longer) known.
        """
        with self.engine.connect() as conn:
            key = self._known_domain(conn, identifier.domain)
            wanted = {self._known_domain(conn, d) for d in domains}
            person_id = self._person_of(conn, key, identifier.value)
            found = self._identifiers_of(conn, person_id)
        return [
            i
            for i in found
            if (i.domain.key, i.value) != (key, identifier.value) and (not wanted or i.domain.key in wanted)
        ]

    def _person_of(self, conn: Any, domain_key: str, value: str) -> str:
        if domain_key == self.config.master_domain.key:
            row = store.person(conn, value)
            while row is not None and row.status == "merged" and row.merged_into:
                row = store.person(conn, row.merged_into)
            if row is None or row.status != "active":
                raise UnknownPatientError(f"no person {value}")
            return str(row.id)
        patient = store.patient_by_identifier(conn, domain_key, value)
        if patient is None or patient.status != "active" or patient.person_id is None:
            raise UnknownPatientError(f"no patient {value} in domain '{domain_key}'")
        return patient.person_id

    def patient(self, identifier: Identifier) -> dict[str, Any]:
        """A1.17: a patient by local ID, with its person and link."""
        with self.engine.connect() as conn:
            key = self._known_domain(conn, identifier.domain)
            row = store.patient_by_identifier(conn, key, identifier.value)
            if row is None:
                raise UnknownPatientError(f"no patient {identifier.value} in domain '{key}'")
            return {
                "patient_id": row.id, "domain": row.domain_key, "local_id": row.local_id,
                "person_id": row.person_id, "status": row.status, "link": row.link_kind,
                "merged_into": row.merged_into, "record": codec.to_json(row.record, with_derived=False),
            }  # fmt: skip

    def golden(self, person_id: str) -> dict[str, Any]:
        """A1.18: a person's golden record and every identifier it has."""
        with self.engine.connect() as conn:
            resolved = self._person_of(conn, self.config.master_domain.key, person_id)
            row = store.person(conn, resolved)
            members = store.patients_of(conn, resolved)
            return {
                "person_id": resolved,
                "status": row.status,
                "golden": row.golden,
                "identifiers": [codec.identifier_to_json(i) for i in self._identifiers_of(conn, resolved, members)],
                "patients": [{"domain": m.domain_key, "local_id": m.local_id, "link": m.link_kind} for m in members],
            }

    def search(
        self,
        *,
        family: str = "",
        given: str = "",
        birth_date: str = "",
        sex: str = "",
        national_id: str = "",
        identifier: Identifier | None = None,
        domains: Sequence[Domain] = (),
        limit: int = 100,
    ) -> list[SearchHit]:
        """PDQ: one hit per person, exact or wildcard (``*``) names in hanzi or pinyin.

        Names are standardized the way registered records are, so 張三, 张三 and
        ZHANG^SAN find the same patients.
        """
        probe = (
            self.standardize(
                PatientRecord(
                    names=(PersonName(family, given),),
                    birth_date=birth_date,
                    sex=sex,
                    national_id=national_id,
                )
            ).derived
            if (family or given or birth_date or sex or national_id)
            else {}
        )
        query = select(patients).where(patients.c.status == "active")
        for column, raw, norm, pinyin in (
            (patients.c.family, family, probe.get("family", ""), probe.get("family_pinyin", "")),
            (patients.c.given, given, probe.get("given", ""), probe.get("given_pinyin", "")),
        ):
            if not raw:
                continue
            pin_column = patients.c.family_pinyin if column is patients.c.family else patients.c.given_pinyin
            if "*" in raw:
                # standardizing would drop the '*': match the raw pattern as hanzi, upper-case
                # Latin (the stored form) and toneless pinyin without spaces
                as_is, _ = _like(raw.strip())
                upper, _ = _like(raw.strip().upper())
                pin, _ = _like(raw.strip().lower().replace(" ", ""))
                query = query.where(
                    or_(
                        column.like(as_is, escape="\\"),
                        column.like(upper, escape="\\"),
                        pin_column.like(pin, escape="\\"),
                    )
                )
            else:
                value = norm or raw
                query = query.where(or_(column == value, pin_column == (pinyin or value)))
        if birth_date:
            query = query.where(patients.c.birth_date == (probe.get("birth_date") or birth_date))
        if sex:
            query = query.where(patients.c.sex == (probe.get("sex") or sex))
        if national_id:
            query = query.where(patients.c.national_id == (probe.get("national_id") or national_id))
        with self.engine.connect() as conn:
            if identifier is not None:
                key = self._known_domain(conn, identifier.domain)
                found = store.patient_by_identifier(conn, key, identifier.value)
                if found is None:
                    return []
                query = query.where(patients.c.person_id == found.person_id)
            wanted = {self._known_domain(conn, d) for d in domains}
            hits: dict[str, SearchHit] = {}
            for row in conn.execute(query.order_by(patients.c.updated_at.desc()).limit(limit * 5)):
                person_id = row.person_id
                if person_id is None or person_id in hits:
                    continue
                ids = [i for i in self._identifiers_of(conn, person_id) if not wanted or i.domain.key in wanted]
                if wanted and not ids:
                    continue
                golden = store.person(conn, person_id)
                record = (
                    codec.from_json(golden.golden)
                    if golden is not None and golden.golden
                    else codec.from_json(row.record)
                )
                hits[person_id] = SearchHit(person_id, record, tuple(ids), 1.0)
                if len(hits) >= limit:
                    break
        return list(hits.values())

    def reviews(self, status: str = "open", limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(reviews).where(reviews.c.status == status).order_by(reviews.c.weight.desc()).limit(limit)
            )
            out = []
            for row in rows:
                a, b = store.patient(conn, row.patient_a), store.patient(conn, row.patient_b)
                out.append({
                    "id": row.id, "weight": row.weight, "status": row.status, "evidence": row.evidence,
                    "a": {"domain": a.domain_key, "local_id": a.local_id, "person_id": a.person_id} if a else None,
                    "b": {"domain": b.domain_key, "local_id": b.local_id, "person_id": b.person_id} if b else None,
                })  # fmt: skip
            return out

    def history(self, person_id: str | None = None, patient_id: str | None = None) -> list[dict[str, Any]]:
        query = select(history).order_by(history.c.id)
        if person_id:
            query = query.where(history.c.person_id == person_id)
        if patient_id:
            query = query.where(history.c.patient_id == patient_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        def count(table: Any, condition: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one())

        with self.engine.connect() as conn:
            return {
                "persons": count(persons, persons.c.status == "active"),
                "patients": count(patients, patients.c.status == "active"),
                "open_reviews": count(reviews, reviews.c.status == "open"),
            }
