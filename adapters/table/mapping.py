"""Rows to JSON message bodies and back.

A row becomes one JSON object (field -> value) so a route can validate,
transform (``transform: {python: ...}`` or XSLT after a JSON step) and log it
like any other message, and the journal keeps what was read. Values JSON has
no type for are written as text that converts back losslessly: dates and times
ISO 8601, ``Decimal`` as a string (a float would round amounts and doses),
bytes base64. The producer converts such text back per column type, so a row
read by ``from: table:`` can be written by ``to: table:`` unchanged.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, types

from esb.errors import ConfigError, TransformError
from esb.uri import did_you_mean


class MappingError(TransformError):
    """A row or a body that cannot be mapped; the text names the column, never the value."""


def jsonable(value: Any) -> Any:
    """``value`` as a JSON value (see the module docstring for the conventions)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MappingError("a float that is not finite (NaN or infinity) has no JSON form")
        return value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise MappingError("a decimal that is not finite has no JSON form")
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise MappingError(f"a {type(value).__name__} value has no JSON form")


def row_body(row: Mapping[str, Any], columns: Sequence[tuple[str, str]]) -> bytes:
    """The JSON body of one row: ``columns`` are (column, field) pairs, in order."""
    out: dict[str, Any] = {}
    for column, name in columns:
        try:
            out[name] = jsonable(row[column])
        except MappingError as exc:
            raise MappingError(f"column '{column}': {exc}") from None
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def body_rows(body: bytes, *, table: str) -> list[dict[str, Any]]:
    """The objects of a producer's body: one JSON object, or an array of them."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"table '{table}': the body is not JSON ({type(exc).__name__})") from None
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise MappingError(
                f"table '{table}': the body must be a JSON object or an array of objects "
                f"(item {index} is a {type(item).__name__})"
            )
    return items


def check_columns(table: Table, names: Sequence[str], *, what: str) -> None:
    """ConfigError naming each of ``names`` that ``table`` lacks, with a suggestion."""
    have = list(table.columns.keys())
    missing = [name for name in names if name not in table.columns]
    if missing:
        hints = "; ".join(f"'{name}'{did_you_mean(name, have)}" for name in missing)
        raise ConfigError(f"table '{table.fullname}' has no column {hints} ({what}; it has {', '.join(have)})")


def column_value(column_type: types.TypeEngine[Any], value: Any) -> Any:
    """A JSON value converted for a column of ``column_type`` (text back to dates, decimals, bytes)."""
    if value is None or not isinstance(value, str | int | float):
        return value
    try:
        if isinstance(column_type, types.DateTime):
            return dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        if isinstance(column_type, types.Date):
            return dt.date.fromisoformat(value[:10]) if isinstance(value, str) else value
        if isinstance(column_type, types.Time):
            return dt.time.fromisoformat(value) if isinstance(value, str) else value
        if isinstance(column_type, types._Binary):
            return base64.b64decode(value, validate=True) if isinstance(value, str) else value
        if isinstance(column_type, types.Boolean):
            return value if not isinstance(value, str) else value.lower() in ("true", "1", "yes", "y", "t")
        if isinstance(column_type, types.Integer) and isinstance(value, str):
            return int(value)
        if isinstance(column_type, types.Numeric) and not isinstance(value, bool):
            return decimal.Decimal(str(value)) if column_type.asdecimal else float(value)
        if isinstance(column_type, types.String) and not isinstance(value, str):
            return str(value)
    except (ValueError, TypeError, binascii.Error, decimal.InvalidOperation):
        raise MappingError(f"a value does not fit the column's type {column_type}") from None
    return value


def table_rows(
    table: Table, items: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]], fixed: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Rows for ``table`` from body objects: mapped fields (all fields when ``columns`` is empty) plus constants.

    Every row gets the same set of columns (a field absent from one object is
    NULL there), which executemany needs.
    """
    if columns:
        mapping = list(columns)
    else:
        seen: dict[str, None] = {}
        for item in items:
            seen.update(dict.fromkeys(item))
        mapping = [(name, name) for name in seen]
    names = [column for column, _ in mapping if column not in fixed] + list(fixed)
    check_columns(table, names, what="written by to: table:")
    rows = []
    for item in items:
        row: dict[str, Any] = {}
        for column, name in mapping:
            if column in fixed:
                continue
            try:
                row[column] = column_value(table.c[column].type, item.get(name))
            except MappingError as exc:
                raise MappingError(f"table '{table.fullname}' column '{column}': {exc}") from None
        for column, value in fixed.items():
            row[column] = column_value(table.c[column].type, value)
        rows.append(row)
    return rows
