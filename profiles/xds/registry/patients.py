"""The affinity-domain patient ID of XDS is the EMPI master ID: ``<person id>^^^&<master OID>&ISO``.

A source gets the master ID with a PIX query (ITI-9) and submits with it. The
registry asks the EMPI's tables, in the same database and transaction, whether
the ID names a person: unknown IDs are refused (XDSUnknownPatientId), and so is
an ID merged into another (new submissions must use the survivor). Queries for
a survivor also find what was registered under the IDs merged into it, so a
merge in the EMPI shows in the registry at once, without rewriting rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, select

from profiles.empi.schema import persons

PatientStatus = Literal["active", "merged", "unknown"]


@dataclass(frozen=True)
class PatientId:
    """A CX as XDS writes it: ``id^^^&universal id&ISO`` (the assigning authority by OID only)."""

    value: str
    universal_id: str

    @classmethod
    def parse(cls, text: str) -> PatientId | None:
        """The ID, or None when ``text`` is not of that shape (XDSRegistryMetadataError for the caller)."""
        parts = text.strip().split("^")
        if len(parts) < 4 or not parts[0] or any(parts[1:3]):
            return None
        authority = parts[3].split("&")
        if len(authority) != 3 or authority[0] or not authority[1] or authority[2] != "ISO":
            return None
        return cls(parts[0], authority[1])

    def __str__(self) -> str:
        return f"{self.value}^^^&{self.universal_id}&ISO"


def patient_status(conn: Connection, patient_id: PatientId, master_oid: str) -> PatientStatus:
    """``active`` when the ID names a live EMPI person in the master domain; else merged or unknown."""
    if patient_id.universal_id != master_oid:
        return "unknown"
    row = conn.execute(select(persons.c.status).where(persons.c.id == patient_id.value)).first()
    if row is None or row.status == "retired":
        return "unknown"
    return "merged" if row.status == "merged" else "active"


def patient_group(conn: Connection, patient_id: PatientId, master_oid: str) -> list[str]:
    """The CX strings a query for ``patient_id`` covers: itself and every ID merged into it (transitively).

    An ID outside the master domain covers only itself (it matches nothing the
    registry accepted, which is the right answer).
    """
    if patient_id.universal_id != master_oid:
        return [str(patient_id)]
    found = [patient_id.value]
    frontier = [patient_id.value]
    while frontier:
        rows = conn.execute(select(persons.c.id).where(persons.c.merged_into.in_(frontier))).all()
        frontier = [r.id for r in rows if r.id not in found]
        found.extend(frontier)
    return [str(PatientId(value, master_oid)) for value in found]
