"""Row-level reads and writes of the EMPI tables, inside a caller's transaction.

Kept apart from :mod:`profiles.empi.index`, which holds the rules, so the rules
read as rules and every SQL statement is in one place (all bound parameters,
no SQL built from strings).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from esb.journal.store import utcnow
from profiles.empi import codec
from profiles.empi.model import Domain, Identifier, PatientRecord
from profiles.empi.schema import assertions, blocking, domains, history, identifiers, patients, persons


@dataclass
class PatientRow:
    id: str
    domain_key: str
    local_id: str
    person_id: str | None
    link_kind: str
    status: str
    merged_into: str | None
    record: PatientRecord
    event_time: str
    version: int


def _patient(row: Any) -> PatientRow:
    return PatientRow(
        id=row.id,
        domain_key=row.domain_key,
        local_id=row.local_id,
        person_id=row.person_id,
        link_kind=row.link_kind,
        status=row.status,
        merged_into=row.merged_into,
        record=codec.from_json(row.record),
        event_time=row.event_time or "",
        version=row.version,
    )


def new_id() -> str:
    return uuid.uuid4().hex


def domain_row(conn: Connection, key: str) -> Any:
    return conn.execute(select(domains).where(domains.c.key == key)).first()


def find_domain(conn: Connection, domain: Domain) -> Any:
    """The registered domain an HD names: by OID when it has one, else by namespace.

    Senders name one authority as ``HIS1``, ``HIS1&1.2.3&ISO`` or ``&1.2.3&ISO``.
    """
    if domain.universal_id:
        row = conn.execute(select(domains).where(domains.c.universal_id == domain.universal_id)).first()
        if row is not None or not domain.namespace:
            return row
        # an OID we do not know: the namespace only matches a domain registered without one
        return conn.execute(
            select(domains).where(domains.c.namespace == domain.namespace, domains.c.universal_id == "")
        ).first()
    if not domain.namespace:
        return None
    return conn.execute(select(domains).where(domains.c.namespace == domain.namespace)).first()


def all_domains(conn: Connection) -> list[Any]:
    return list(conn.execute(select(domains).order_by(domains.c.kind, domains.c.key)))


def insert_domain(conn: Connection, domain: Domain, *, kind: str, auto: bool, description: str = "") -> None:
    conn.execute(
        insert(domains).values(
            key=domain.key,
            namespace=domain.namespace,
            universal_id=domain.universal_id,
            universal_id_type=domain.universal_id_type,
            kind=kind,
            description=description,
            auto_registered=auto,
            created_at=utcnow(),
        )  # fmt: skip
    )


def patient_by_local(conn: Connection, domain_key: str, local_id: str, *, lock: bool = False) -> PatientRow | None:
    query = select(patients).where(patients.c.domain_key == domain_key, patients.c.local_id == local_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _patient(row) if row else None


def patient_by_identifier(conn: Connection, domain_key: str, value: str) -> PatientRow | None:
    """A patient by any identifier a source asserted for it (its own or a cross-reference)."""
    direct = patient_by_local(conn, domain_key, value)
    if direct is not None:
        return direct
    row = conn.execute(
        select(patients)
        .join(identifiers, identifiers.c.patient_id == patients.c.id)
        .where(identifiers.c.domain_key == domain_key, identifiers.c.value == value)
    ).first()
    return _patient(row) if row else None


def patient(conn: Connection, patient_id: str) -> PatientRow | None:
    row = conn.execute(select(patients).where(patients.c.id == patient_id)).first()
    return _patient(row) if row else None


def patients_of(conn: Connection, person_id: str, *, status: str = "active") -> list[PatientRow]:
    query = select(patients).where(patients.c.person_id == person_id, patients.c.status == status)
    return [_patient(r) for r in conn.execute(query.order_by(patients.c.created_at))]


def patients_by_ids(conn: Connection, ids: Sequence[str]) -> list[PatientRow]:
    if not ids:
        return []
    return [_patient(r) for r in conn.execute(select(patients).where(patients.c.id.in_(ids)))]


def _search_columns(record: PatientRecord) -> dict[str, Any]:
    d = record.derived
    return {
        "family": (d.get("family") or "")[:200],
        "given": (d.get("given") or "")[:200],
        "family_pinyin": (d.get("family_pinyin") or "")[:200],
        "given_pinyin": (d.get("given_pinyin") or "")[:200],
        "birth_date": (d.get("birth_date") or "")[:8],
        "sex": (d.get("sex") or "")[:1],
        "national_id": (d.get("national_id") or "")[:18],
    }


def patient_row(
    patient_id: str,
    domain_key: str,
    local_id: str,
    record: PatientRecord,
    now: Any,
    *,
    person_id: str | None = None,
) -> dict[str, Any]:
    """The values of a new patient row (one registration, or one row of a bulk load)."""
    return {
        "id": patient_id,
        "domain_key": domain_key,
        "local_id": local_id,
        "person_id": person_id,
        "link_kind": "auto",
        "link_weight": None,
        "status": "active",
        "merged_into": None,
        "record": codec.to_json(record),
        "source": record.source[:400],
        "event_time": record.event_time,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        **_search_columns(record),
    }


def insert_patient(conn: Connection, domain_key: str, local_id: str, record: PatientRecord) -> str:
    patient_id = new_id()
    conn.execute(insert(patients).values(**patient_row(patient_id, domain_key, local_id, record, utcnow())))
    return patient_id


def update_patient(conn: Connection, patient_id: str, **values: Any) -> None:
    if "record" in values and isinstance(values["record"], PatientRecord):
        record: PatientRecord = values.pop("record")
        values.update(record=codec.to_json(record), event_time=record.event_time, source=record.source[:400])
        values.update(_search_columns(record))
        values["version"] = patients.c.version + 1
    values["updated_at"] = utcnow()
    conn.execute(update(patients).where(patients.c.id == patient_id).values(**values))


def replace_identifiers(conn: Connection, patient_id: str, items: Iterable[tuple[str, Identifier]]) -> None:
    """The patient's cross-referenced identifiers become exactly ``items`` (domain key, identifier).

    An identifier another patient already holds stays with that patient: a feed
    may not steal an identity; the conflict is the review queue's business.
    """
    conn.execute(delete(identifiers).where(identifiers.c.patient_id == patient_id))
    for domain_key, identifier in items:
        taken = conn.execute(
            select(identifiers.c.patient_id).where(
                identifiers.c.domain_key == domain_key, identifiers.c.value == identifier.value
            )
        ).first()
        if taken is None:
            conn.execute(
                insert(identifiers).values(
                    domain_key=domain_key,
                    value=identifier.value,
                    patient_id=patient_id,
                    type_code=identifier.type_code[:10],
                )  # fmt: skip
            )


def identifiers_of(conn: Connection, patient_ids: Sequence[str]) -> list[Any]:
    """The patients' identifiers with their domain's HD parts, in one query (a join, so the
    feed's hot path does not read the whole domain table per message)."""
    if not patient_ids:
        return []
    query = (
        select(
            identifiers,
            domains.c.namespace.label("d_namespace"),
            domains.c.universal_id.label("d_universal_id"),
            domains.c.universal_id_type.label("d_universal_id_type"),
        )
        .outerjoin(domains, domains.c.key == identifiers.c.domain_key)
        .where(identifiers.c.patient_id.in_(patient_ids))
    )
    return list(conn.execute(query))


def replace_blocking(conn: Connection, patient_id: str, keys: Iterable[str]) -> None:
    conn.execute(delete(blocking).where(blocking.c.patient_id == patient_id))
    rows = [{"key": k[:200], "patient_id": patient_id} for k in sorted(set(keys))]
    if rows:
        conn.execute(insert(blocking), rows)


def candidates(conn: Connection, patient_id: str, keys: Sequence[str], limit: int) -> list[str]:
    """Active patients sharing a blocking key, those sharing most keys first."""
    if not keys:
        return []
    from sqlalchemy import func

    shared = func.count().label("shared")
    query = (
        select(blocking.c.patient_id, shared)
        .join(patients, patients.c.id == blocking.c.patient_id)
        .where(blocking.c.key.in_(list(keys)), blocking.c.patient_id != patient_id, patients.c.status == "active")
        .group_by(blocking.c.patient_id)
        .order_by(shared.desc())
        .limit(limit)
    )
    return [r.patient_id for r in conn.execute(query)]


def new_person_id() -> str:
    """A master ID: 'P' and 15 hex digits, unique without a sequence (any node may mint one)."""
    return "P" + uuid.uuid4().hex[:15].upper()


def new_person(conn: Connection) -> str:
    person_id = new_person_id()
    now = utcnow()
    conn.execute(insert(persons).values(id=person_id, status="active", golden={}, created_at=now, updated_at=now))
    return person_id


def person(conn: Connection, person_id: str) -> Any:
    return conn.execute(select(persons).where(persons.c.id == person_id)).first()


def update_person(conn: Connection, person_id: str, **values: Any) -> None:
    values["updated_at"] = utcnow()
    conn.execute(update(persons).where(persons.c.id == person_id).values(**values))


def active_assertions(conn: Connection, patient_id: str) -> list[Any]:
    query = select(assertions).where(
        assertions.c.active.is_(True),
        (assertions.c.patient_a == patient_id) | (assertions.c.patient_b == patient_id),
    )
    return list(conn.execute(query))


def add_assertion(conn: Connection, a: str, b: str, kind: str, actor: str, reason: str = "") -> None:
    """A new decision about a pair replaces any earlier one about the same pair."""
    pair = ((assertions.c.patient_a == a) & (assertions.c.patient_b == b)) | (
        (assertions.c.patient_a == b) & (assertions.c.patient_b == a)
    )
    now = utcnow()
    conn.execute(update(assertions).where(pair, assertions.c.active.is_(True)).values(active=False, revoked_at=now))
    conn.execute(
        insert(assertions).values(
            patient_a=a, patient_b=b, kind=kind, active=True, actor=actor, reason=reason, created_at=now
        )
    )


def log(
    conn: Connection, op: str, actor: str, *, person_id: str | None = None, patient_id: str | None = None, **detail: Any
) -> None:
    conn.execute(
        insert(history).values(
            at=utcnow(), op=op, person_id=person_id, patient_id=patient_id, detail=detail, actor=actor[:200]
        )
    )
