"""What every stored query shares: its context, the row shape it returns and the result limit.

A query returns the rows of ``objects`` it selected, each fetched with its
``xml`` in the same SELECT when the answer is LeafClass (never one SELECT per
object); ObjectRef answers leave the XML in the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Select, literal, select

from esb.errors import XdsError
from profiles.xds.registry.query.binding import Args
from profiles.xds.registry.schema import ASSOCIATION, objects

TOO_MANY = "XDSTooManyResults"

#: columns every query selects (plus ``xml`` for LeafClass)
_COLUMNS = (
    objects.c.id,
    objects.c.kind,
    objects.c.status,
    objects.c.patient_id,
    objects.c.lid,
    objects.c.association_type,
    objects.c.source_object,
    objects.c.target_object,
    objects.c.registered_at,
)


@dataclass
class Context:
    conn: Connection
    args: Args
    leaf: bool
    max_results: int
    master_oid: str
    dialect: str

    def select(self) -> Select[Any]:
        """SELECT of the row columns (with ``xml`` only for LeafClass) FROM objects."""
        xml = objects.c.xml if self.leaf else literal(None).label("xml")
        return select(*_COLUMNS, xml)

    def fetch(self, statement: Select[Any], *, already: int = 0) -> list[Any]:
        """Rows of ``statement``, at most max_results in all (``already`` counts rows found before)."""
        room = self.max_results - already
        rows = list(self.conn.execute(statement.limit(max(room, 0) + 1)))
        if len(rows) > room:
            raise too_many(self.max_results)
        return rows


@dataclass
class Outcome:
    """The rows a query selected, in answer order, and what the answer may assume about patients."""

    rows: list[Any] = field(default_factory=list)
    #: the queried (surviving) patient ID: every row is this patient's (Find queries, GetAll)
    patient: str | None = None


def too_many(limit: int) -> XdsError:
    return XdsError(f"the query matches more than {limit} objects; narrow it down", code=TOO_MANY)


def unique_rows(*batches: Iterable[Any]) -> list[Any]:
    """Rows of several SELECTs without repeats (first occurrence kept)."""
    seen: dict[str, Any] = {}
    for batch in batches:
        for row in batch:
            seen.setdefault(row.id, row)
    return list(seen.values())


def ids(rows: Sequence[Any]) -> list[str]:
    return [row.id for row in rows]


def prune_associations(rows: list[Any]) -> list[Any]:
    """Drop Associations whose source or target is not in the answer, until none is left dangling.

    A SubmissionSet's HasMember of a Folder HasMember association goes once
    that association went, hence the fixpoint.
    """
    while True:
        present = {row.id for row in rows}
        kept = [row for row in rows if row.kind != ASSOCIATION or _linked(row, present)]
        if len(kept) == len(rows):
            return kept
        rows = kept


def _linked(row: Any, present: set[str]) -> bool:
    return bool(row.source_object in present and row.target_object in present)
