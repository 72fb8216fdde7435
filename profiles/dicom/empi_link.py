"""The link from a study's patient (Patient ID + Issuer) to the EMPI master patient, resolved when asked.

The index keeps the patient as the modality sent it; the EMPI's tables, in the
same database, say which person that local ID belongs to now. Resolving at
query time means an EMPI merge or link shows at once in C-FIND, QIDO-RS and
the XDS-I manifests, with no row rewritten here (as the XDS registry does,
:mod:`profiles.xds.registry.patients`).

An issuer arrives as the domain's namespace (``HIS1``) or its OID
(``1.2.3.4``), in (0010,0021) or in the Universal Entity ID of (0010,0024):
both name the same EMPI domain, so every lookup accepts either.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, Connection, and_, or_, select

from profiles.dicom.schema import patients as dicom_patients
from profiles.empi.schema import domains, identifiers, persons
from profiles.empi.schema import patients as empi_patients

#: a merge chain longer than this is a loop in the data, not a history
MAX_MERGE_DEPTH = 32


def domain_rows(conn: Connection, issuer: str) -> list[tuple[str, str, str, str]]:
    """(key, namespace, universal id, kind) of the EMPI domains ``issuer`` names: by OID first, then namespace."""
    if not issuer:
        return []
    columns = (domains.c.key, domains.c.namespace, domains.c.universal_id, domains.c.kind)
    for column in (domains.c.universal_id, domains.c.namespace, domains.c.key):
        rows = conn.execute(select(*columns).where(column == issuer)).all()
        if rows:
            return [(r.key, r.namespace, r.universal_id, r.kind) for r in rows]
    return []


def issuer_names(conn: Connection, issuer: str) -> set[str]:
    """Every name of the authority ``issuer`` (itself, and the namespace, OID and key of its EMPI domain)."""
    names = {issuer}
    for key, namespace, universal_id, _kind in domain_rows(conn, issuer):
        names.update((key, namespace, universal_id))
    names.discard("")
    return names


def is_master_issuer(conn: Connection, issuer: str, master_oid: str) -> bool:
    """Whether ``issuer`` names the EMPI master domain (its OID or namespace)."""
    if not issuer:
        return False
    if issuer == master_oid:
        return True
    return any(kind == "master" for *_, kind in domain_rows(conn, issuer))


def survivor(conn: Connection, person_id: str) -> str:
    """The person ``person_id`` was merged into, following the chain to the live one."""
    seen = [person_id]
    current = person_id
    for _ in range(MAX_MERGE_DEPTH):
        row = conn.execute(select(persons.c.status, persons.c.merged_into).where(persons.c.id == current)).first()
        if row is None or row.status != "merged" or not row.merged_into or row.merged_into in seen:
            return current
        current = row.merged_into
        seen.append(current)
    return current


def master_patient(conn: Connection, patient_id: str, issuer: str) -> str | None:
    """The EMPI master ID (person) of local ``patient_id`` in ``issuer`` (namespace or OID); None if unknown."""
    keys = [key for key, *_ in domain_rows(conn, issuer)]
    if not patient_id or not keys:
        return None
    direct = select(empi_patients.c.person_id).where(
        empi_patients.c.domain_key.in_(keys), empi_patients.c.local_id == patient_id
    )
    row = conn.execute(direct).first()
    if row is None:
        via = (
            select(empi_patients.c.person_id)
            .join(identifiers, identifiers.c.patient_id == empi_patients.c.id)
            .where(identifiers.c.domain_key.in_(keys), identifiers.c.value == patient_id)
        )
        row = conn.execute(via).first()
    if row is None or not row.person_id:
        return None
    return survivor(conn, str(row.person_id))


def person_group(conn: Connection, person_id: str) -> list[str]:
    """``person_id`` and every person merged into it, transitively."""
    found = [person_id]
    frontier = [person_id]
    while frontier and len(found) < 10_000:
        rows = conn.execute(select(persons.c.id).where(persons.c.merged_into.in_(frontier))).all()
        frontier = [r.id for r in rows if r.id not in found]
        found.extend(frontier)
    return found


def master_patient_pks(conn: Connection, master_id: str, master_names: Iterable[str]) -> list[int]:
    """The index's patients (pk) that are the person ``master_id``: every local ID of it and of persons merged into it.

    Images sent with the master ID itself (issuer = the master domain) count too.
    """
    group = person_group(conn, master_id)
    members = select(empi_patients.c.id).where(
        empi_patients.c.person_id.in_(group), empi_patients.c.status != "deleted"
    )
    pairs: set[tuple[str, str]] = set()
    for row in conn.execute(
        select(empi_patients.c.domain_key, empi_patients.c.local_id).where(empi_patients.c.id.in_(members))
    ):
        pairs.add((row.domain_key, row.local_id))
    for row in conn.execute(
        select(identifiers.c.domain_key, identifiers.c.value).where(identifiers.c.patient_id.in_(members))
    ):
        pairs.add((row.domain_key, row.value))
    names: dict[str, set[str]] = {}
    keys = sorted({key for key, _ in pairs})
    if keys:
        query = select(domains.c.key, domains.c.namespace, domains.c.universal_id).where(domains.c.key.in_(keys))
        for domain in conn.execute(query):
            names[domain.key] = {n for n in (domain.key, domain.namespace, domain.universal_id) if n}
    clauses = [_local(value, names.get(key, {key})) for key, value in sorted(pairs)]
    clauses.append(and_(dicom_patients.c.patient_id.in_(group), _issuer_in(set(master_names))))
    return [int(r.pk) for r in conn.execute(select(dicom_patients.c.pk).where(or_(*clauses)))]


def _issuer_in(names: set[str]) -> ColumnElement[bool]:
    listed = sorted(names)
    return or_(dicom_patients.c.issuer.in_(listed), dicom_patients.c.issuer_uid.in_(listed))


def _local(value: str, names: set[str]) -> ColumnElement[bool]:
    return and_(dicom_patients.c.patient_id == value, _issuer_in(names))
