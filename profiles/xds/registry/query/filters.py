"""WHERE clauses of the stored queries, built with SQLAlchemy Core: every value is a bound parameter.

Codes, authors and reference ids are multi-valued, so they are EXISTS
sub-selects on the side tables, correlated on the object id: one EXISTS per
AND group, an OR of the group's values inside it. Times are compared as the
14-digit padded strings the registry stores (From inclusive, To exclusive).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_

from profiles.xds import ebxml
from profiles.xds.registry.query.binding import Args
from profiles.xds.registry.query.parameters import (
    CODE_SCHEMES,
    DE_AUTHOR_PERSON,
    DE_REFERENCE_ID_LIST,
    DE_STATUS,
    DE_TYPE,
    TIME_RANGES,
)
from profiles.xds.registry.schema import codes, objects, values

Clause = ColumnElement[bool]

AUTHOR_PERSON = "author_person"
REFERENCE_ID = "reference_id"


def code_clauses(args: Args, names: tuple[str, ...] | None = None) -> list[Clause]:
    """One EXISTS per AND group of every coded parameter given (or of ``names``)."""
    clauses: list[Clause] = []
    for name, scheme in CODE_SCHEMES.items():
        if names is not None and name not in names:
            continue
        for group in args.groups(name):
            clauses.append(codes_exist(scheme, group))
    return clauses


def codes_exist(scheme: str, group: list[tuple[str, str]]) -> Clause:
    pairs = [and_(codes.c.code == code, codes.c.coding_scheme == coding_scheme) for code, coding_scheme in group]
    return exists().where(codes.c.object_id == objects.c.id, codes.c.scheme == scheme, or_(*pairs))


def time_clauses(args: Args) -> list[Clause]:
    clauses: list[Clause] = []
    for name, (column_name, bound) in TIME_RANGES.items():
        value = args.one(name)
        if value is None:
            continue
        column = objects.c[column_name]
        clauses.append(column >= value if bound == "from" else column < value)
    return clauses


def values_equal(name: str, group: list[str]) -> Clause:
    return exists().where(values.c.object_id == objects.c.id, values.c.name == name, values.c.value.in_(group))


def values_like(name: str, patterns: list[str], dialect: str) -> Clause:
    """Any value matching any pattern: ``%`` any string, ``_`` one character, all else literal, case-sensitive."""
    return exists().where(
        values.c.object_id == objects.c.id,
        values.c.name == name,
        or_(*(like(values.c.value, pattern, dialect) for pattern in patterns)),
    )


def like(column: Any, pattern: str, dialect: str) -> Clause:
    """SQL LIKE with the same meaning on every dialect.

    SQLite's LIKE ignores ASCII case, so there the pattern becomes a GLOB
    (case-sensitive) with ``*``/``?``/``[`` escaped; elsewhere LIKE with an
    explicit escape character so a backslash is literal on PostgreSQL too.
    """
    if dialect == "sqlite":
        glob = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
        return column.op("GLOB")("".join(glob.get(ch, ch) for ch in pattern))  # type: ignore[no-any-return]
    return column.like(pattern.replace("\\", "\\\\"), escape="\\")  # type: ignore[no-any-return]


def document_clauses(args: Args, dialect: str) -> list[Clause]:
    """DocumentEntry attribute filters of FindDocuments(ByReferenceId): status, type, times, codes, authors, refs."""
    clauses: list[Clause] = [objects.c.status.in_(args.many(DE_STATUS)), *type_clauses(args)]
    clauses.extend(time_clauses(args))
    clauses.extend(code_clauses(args))
    if DE_AUTHOR_PERSON in args:
        clauses.append(values_like(AUTHOR_PERSON, args.many(DE_AUTHOR_PERSON), dialect))
    for group in args.groups(DE_REFERENCE_ID_LIST):
        clauses.append(values_equal(REFERENCE_ID, group))
    return clauses


def type_clauses(args: Args) -> list[Clause]:
    """$XDSDocumentEntryType; without it only stable entries (3.18.4.1.2.3.6.2)."""
    return [objects.c.object_type.in_(args.many(DE_TYPE) or [ebxml.STABLE_DOCUMENT])]
