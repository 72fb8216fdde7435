"""Reads and writes of the registry tables (schema.py), always inside the caller's transaction.

The registry validates a whole submission against what these lookups return and
then writes it with :func:`insert`, in one transaction, so a refusal leaves the
tables as they were. Status changes are guarded (``WHERE status = Approved``),
so two submissions replacing the same document cannot both win.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from lxml import etree
from sqlalchemy import Connection, Row, and_, func, select, update
from sqlalchemy import insert as sql_insert

from esb.exchange import SAFE_XML_PARSER
from profiles.xds import ebxml
from profiles.xds.registry import schema
from profiles.xds.registry.schema import codes, objects, values

Record = dict[str, Any]


def now() -> dt.datetime:
    """Registration time: naive UTC, like every DateTime column of the engine."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def dtm_now() -> str:
    """The current time as a 14-digit UTC DTM (Folder.lastUpdateTime)."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")


def pad_dtm(value: str | None) -> str | None:
    """DTM right-padded with zeros to 14 digits, so string order is time order (schema docstring)."""
    return None if value is None else value.ljust(14, "0")


def get(conn: Connection, ids: Iterable[str]) -> dict[str, Row[Any]]:
    """Objects by entryUUID."""
    wanted = sorted(set(ids))
    found: dict[str, Row[Any]] = {}
    for chunk in _chunks(wanted):
        for row in conn.execute(select(objects).where(objects.c.id.in_(chunk))):
            found[row.id] = row
    return found


def by_unique_id(conn: Connection, unique_ids: Iterable[str], kinds: Sequence[str]) -> list[Row[Any]]:
    """Objects of the given kinds whose uniqueId is one of ``unique_ids`` (any status)."""
    wanted = sorted(set(unique_ids))
    rows: list[Row[Any]] = []
    for chunk in _chunks(wanted):
        query = select(objects).where(objects.c.unique_id.in_(chunk), objects.c.kind.in_(list(kinds)))
        rows.extend(conn.execute(query))
    return rows


def find_documents(conn: Connection, key: str) -> list[Row[Any]]:
    """DocumentEntries whose entryUUID or uniqueId is ``key`` (a uniqueId may name several entries)."""
    query = select(objects).where(
        objects.c.kind == schema.DOCUMENT, (objects.c.id == key) | (objects.c.unique_id == key)
    )
    return list(conn.execute(query))


def insert(conn: Connection, rows: Sequence[Record], code_rows: Sequence[Record], value_rows: Sequence[Record]) -> None:
    """Write the objects of a submission and their side-table rows (executemany: one key set per table)."""
    if rows:
        columns = [c.name for c in objects.columns]
        conn.execute(sql_insert(objects), [{c: row.get(c) for c in columns} for row in rows])
    if code_rows:
        conn.execute(sql_insert(codes), list(code_rows))
    if value_rows:
        conn.execute(sql_insert(values), list(value_rows))


def set_status(conn: Connection, object_id: str, status: str, *, only_if: str | None = None) -> bool:
    """Change an object's status (column and stored XML); False when ``only_if`` did not match."""
    condition = objects.c.id == object_id
    if only_if is not None:
        condition = and_(condition, objects.c.status == only_if)
    row = conn.execute(select(objects.c.xml).where(condition)).first()
    if row is None:
        return False
    element = etree.fromstring(row.xml, SAFE_XML_PARSER)
    element.set("status", status)
    result = conn.execute(update(objects).where(condition).values(status=status, xml=etree.tostring(element)))
    return bool(result.rowcount)


def folders_of(conn: Connection, document_id: str) -> list[str]:
    """Approved Folders holding ``document_id`` through an Approved HasMember association."""
    folder = objects.alias("folder")
    query = (
        select(objects.c.source_object)
        .join(folder, folder.c.id == objects.c.source_object)
        .where(
            objects.c.kind == schema.ASSOCIATION,
            objects.c.association_type == ebxml.HAS_MEMBER,
            objects.c.target_object == document_id,
            objects.c.status == ebxml.APPROVED,
            folder.c.kind == schema.FOLDER,
            folder.c.status == ebxml.APPROVED,
        )
    )
    return sorted({row.source_object for row in conn.execute(query)})


def touch_folders(conn: Connection, folder_ids: Iterable[str], when: str) -> None:
    """Set lastUpdateTime (column and the slot in the stored XML) of existing Folders."""
    for folder_id in sorted(set(folder_ids)):
        row = conn.execute(select(objects.c.xml).where(objects.c.id == folder_id)).first()
        if row is None:
            continue
        element = etree.fromstring(row.xml, SAFE_XML_PARSER)
        set_slot(element, "lastUpdateTime", when)
        conn.execute(
            update(objects).where(objects.c.id == folder_id).values(last_update_time=when, xml=etree.tostring(element))
        )


def set_slot(element: Any, name: str, value: str) -> None:
    """Replace (or add, first among the slots) the single-valued slot ``name`` of an ebRIM element."""
    slot_tag = ebxml.q("rim", "Slot")
    for old in element.findall(slot_tag):
        if old.get("name") == name:
            element.remove(old)
    slot = etree.Element(slot_tag)
    slot.set("name", name)
    value_list = etree.SubElement(slot, ebxml.q("rim", "ValueList"))
    etree.SubElement(value_list, ebxml.q("rim", "Value")).text = value
    element.insert(0, slot)


def counts(conn: Connection) -> dict[str, int]:
    """``{"<kind>.<status>": n}`` for every kind and status (Approved/Deprecated always present)."""
    out = {f"{kind}.{status}": 0 for kind in KINDS for status in ("approved", "deprecated")}
    query = select(objects.c.kind, objects.c.status, func.count()).group_by(objects.c.kind, objects.c.status)
    for kind, status, number in conn.execute(query):
        out[f"{kind}.{status.rsplit(':', 1)[-1].lower()}"] = int(number)
    return out


KINDS = (schema.DOCUMENT, schema.SUBMISSION_SET, schema.FOLDER, schema.ASSOCIATION)


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    """IN lists in bounded chunks (SQLite's variable limit, PostgreSQL plan size)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
