"""Reading a hospital view in watermark order, and rows as JSON messages.

A job reads the rows whose (watermark, key) comes after its checkpoint, in that
order, ``batch`` at a time. The comparison is spelled ``wm > :w OR (wm = :w AND
key > :k)`` rather than as a row value, which not every database has (SQL
Server, older Oracle). Rows without a watermark or a key cannot be placed in
that order and are never read; :meth:`Source.unreadable` counts them for the
run report.

Checkpoints keep their values as text with a type tag (``datetime``, ``int``,
...), so the next read binds the very type the column returned and the
comparison is the database's own, not a text comparison.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Engine, Table, and_, func, or_, select

from adapters.etl.options import EtlOptions
from adapters.table.database import reflect_table, staging_engine
from esb.errors import ConfigError
from esb.uri import Duration, UriError, did_you_mean

#: values are bound in these types; anything else is compared as text
TAGS = ("datetime", "date", "int", "decimal", "float", "str")


def encode(value: Any) -> tuple[str, str]:
    """A watermark or key value as (text, type tag), for the checkpoint and message headers."""
    if isinstance(value, dt.datetime):
        return value.isoformat(), "datetime"
    if isinstance(value, dt.date):
        return value.isoformat(), "date"
    if isinstance(value, bool):
        return str(int(value)), "int"
    if isinstance(value, int):
        return str(value), "int"
    if isinstance(value, decimal.Decimal):
        return str(value), "decimal"
    if isinstance(value, float):
        return repr(value), "float"
    return str(value), "str"


def decode(text: str, tag: str) -> Any:
    """The value :func:`encode` was given."""
    if tag == "datetime":
        return dt.datetime.fromisoformat(text)
    if tag == "date":
        return dt.date.fromisoformat(text)
    if tag == "int":
        return int(text)
    if tag == "decimal":
        return decimal.Decimal(text)
    if tag == "float":
        return float(text)
    return text


def json_value(value: Any) -> Any:
    """A column value as JSON: dates ISO 8601, decimals as text (no float rounding), bytes base64."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    return value


def row_json(row: Mapping[str, Any]) -> str:
    return json.dumps({name: json_value(value) for name, value in row.items()}, ensure_ascii=False)


def python_type(column: Column[Any]) -> type:
    try:
        return column.type.python_type
    except NotImplementedError:
        return str


def bound_value(text: str, column: Column[Any], *, what: str, now: dt.datetime | None = None) -> Any:
    """``since``/``until``/``--key`` text in the column's type; ConfigError saying what is allowed.

    Dates and timestamps also take an age (``30d``: that long before now, in the
    engine's local time, which is what hospital databases store).
    """
    kind = python_type(column)
    text = text.strip()
    try:
        if kind in (dt.datetime, dt.date):
            try:
                moment = (now or dt.datetime.now()) - dt.timedelta(seconds=Duration.parse(text))
            except UriError:
                moment = dt.datetime.fromisoformat(text)
            return moment if kind is dt.datetime else moment.date()
        if kind is int:
            return int(text)
        if kind is decimal.Decimal:
            return decimal.Decimal(text)
        if kind is float:
            return float(text)
    except (ValueError, decimal.InvalidOperation):
        example = {int: "12345", float: "1.5", decimal.Decimal: "1.50"}.get(kind, "2024-01-01, 2024-01-01T08:00 or 30d")
        raise ConfigError(
            f"{what} '{text}' does not fit column '{column.name}' ({kind.__name__}); write e.g. {example}"
        ) from None
    return text


@dataclass(frozen=True)
class Position:
    """Where a job is in the view: the last (watermark, key) it finished."""

    watermark: Any
    key: Any

    def encoded(self) -> tuple[str, str, str, str]:
        return (*encode(self.watermark), *encode(self.key))


class Source:
    """One view of one hospital database, reflected on first use (lint never connects)."""

    def __init__(self, options: EtlOptions, where: str) -> None:
        self.options = options
        self.where = where
        self.engine: Engine = staging_engine(options.url, where=where)
        self._table: Table | None = None

    # -- the view --------------------------------------------------------------------

    @property
    def table(self) -> Table:
        if self._table is None:
            self._table = self._reflect()
        return self._table

    def _reflect(self) -> Table:
        table = reflect_table(self.engine, self.options.view)
        names = list(table.c.keys())
        for option in ("watermark", "key"):
            self._column_of(table, getattr(self.options, option), f"{option} column", names)
        for name in self.options.columns:
            self._column_of(table, name, "column", names)
        return table

    def _column_of(self, table: Table, name: str, what: str, names: list[str]) -> Column[Any]:
        if name in table.c:
            return table.c[name]
        folded = {n.casefold(): n for n in names}
        hint = (
            f" (did you mean '{folded[name.casefold()]}'?)"
            if name.casefold() in folded
            else did_you_mean(name, names) or f" (columns: {', '.join(names)})"
        )
        raise ConfigError(f"{self.where}: {what} '{name}' is not in {self.options.view}{hint}")

    @property
    def wm(self) -> Column[Any]:
        return self.table.c[self.options.watermark]

    @property
    def key(self) -> Column[Any]:
        return self.table.c[self.options.key]

    def bound(self, text: str, what: str) -> Any:
        return bound_value(text, self.wm, what=f"{self.where}: {what}")

    def key_value(self, text: str) -> Any:
        return bound_value(text, self.key, what=f"{self.where}: key")

    # -- queries ----------------------------------------------------------------------

    def _range(self, after: Position | None, lower: Any) -> list[ColumnElement[bool]]:
        wm, key = self.wm, self.key
        where: list[ColumnElement[bool]] = [wm.is_not(None), key.is_not(None)]
        if after is not None:
            where.append(or_(wm > after.watermark, and_(wm == after.watermark, key > after.key)))
        elif lower is not None:
            where.append(wm >= lower)
        if self.options.until:
            where.append(wm < self.bound(self.options.until, "until"))
        return where

    def _selected(self) -> list[Column[Any]]:
        table = self.table
        if not self.options.columns:
            return list(table.c)
        names = dict.fromkeys([*self.options.columns, self.options.watermark, self.options.key])
        return [table.c[n] for n in names]

    def read(self, after: Position | None, lower: Any, limit: int) -> list[dict[str, Any]]:
        """The next ``limit`` rows after ``after`` (or from ``lower``), in (watermark, key) order."""
        query = select(*self._selected()).where(*self._range(after, lower)).order_by(self.wm, self.key).limit(limit)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def count(self, after: Position | None, lower: Any) -> int:
        """How many rows are left to read (for the progress bar)."""
        query = select(func.count()).select_from(self.table).where(*self._range(after, lower))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def unreadable(self) -> int:
        """Rows without a watermark or a key: they cannot be placed in order, so no job reads them."""
        query = select(func.count()).select_from(self.table).where(or_(self.wm.is_(None), self.key.is_(None)))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def by_keys(self, keys: Sequence[Any]) -> list[dict[str, Any]]:
        """The current rows with these keys (re-running rejected rows), in (watermark, key) order."""
        rows: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):  # SQL Server takes at most 2100 parameters
                chunk = keys[start : start + 500]
                query = select(*self._selected()).where(self.key.in_(chunk), self.wm.is_not(None))
                rows.extend(dict(row._mapping) for row in conn.execute(query))
        rows.sort(key=lambda r: (r[self.options.watermark], r[self.options.key]))
        return rows

    def position(self, row: Mapping[str, Any]) -> Position:
        return Position(row[self.options.watermark], row[self.options.key])
