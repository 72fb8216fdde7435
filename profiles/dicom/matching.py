"""C-FIND / QIDO-RS attribute matching (PS3.4 C.2.2.2) as SQLAlchemy expressions with bound parameters.

- universal: an empty value (or ``*`` alone) matches everything; no condition;
- single value: equality; case-sensitive except person names (PN), which are
  compared upper-cased (the index keeps an upper-cased copy), component groups
  ignored when the request names only the first one;
- wildcard: ``*`` any run, ``?`` one character, on text and PN. SQLite gets
  ``GLOB`` (case-sensitive, like DICOM), other databases ``LIKE`` (case-sensitive
  there), both with the literal prefix also given as a range so a B-tree index
  serves ``SMITH*`` whatever the column's collation;
- range: ``a-b``, ``a-``, ``-b`` for dates and times (inclusive; a time given
  to the hour or minute covers all of it);
- list of UIDs: backslash-separated values, any of them;
- multiple values of other attributes (PS3.4 C.2.2.2.x): any of them;
- empty value ``""`` (two double quotes): matches entities without a value.

Values are never put in SQL text: every value is a bound parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, cast

from pydicom.multival import MultiValue
from sqlalchemy import ColumnElement, and_, false, or_

from profiles.dicom.attributes import norm_time, pn_key

Kind = Literal["text", "pn", "date", "time", "uid", "int"]
DATE = re.compile(r"\d{8}")
EMPTY_VALUE = '""'


def query_values(value: Any) -> list[str]:
    """The values of a request element as strings (one empty list for a universal match)."""
    if value is None:
        return []
    items = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    values = [str(v).replace("\x00", "").strip() for v in items]
    return [] if not any(values) else values


def condition(column: Any, kind: Kind, values: Sequence[str], dialect: str) -> ColumnElement[bool] | None:
    """The condition a request value puts on ``column``; None for universal matching."""
    if not values:
        return None
    if len(values) > 1:
        if kind == "uid":
            return cast(ColumnElement[bool], column.in_(list(values)))
        parts = [condition(column, kind, [v], dialect) for v in values]
        if any(p is None for p in parts):
            return None  # one of them is universal
        return or_(false(), *[p for p in parts if p is not None])
    value = values[0]
    if value == EMPTY_VALUE:
        return cast(ColumnElement[bool], column.is_(None) if kind == "int" else column == "")
    if kind == "uid":
        return cast(ColumnElement[bool], column == value)
    if kind == "int":
        return cast(ColumnElement[bool], column == int(value)) if value.lstrip("+-").isdigit() else false()
    if kind == "date":
        return _date(column, value)
    if kind == "time":
        return _time(column, value)
    if value.strip("*") == "":
        return None  # only '*': universal
    if kind == "pn":
        value = pn_key(value)
        if "=" not in value and not value.endswith("*"):  # the first component group named alone
            return or_(_single(column, value, dialect), wildcard(column, value + "=*", dialect))
    return _single(column, value, dialect)


def _single(column: Any, value: str, dialect: str) -> ColumnElement[bool]:
    if "*" in value or "?" in value:
        return wildcard(column, value, dialect)
    return cast(ColumnElement[bool], column == value)


def wildcard(column: Any, pattern: str, dialect: str) -> ColumnElement[bool]:
    """``*`` and ``?`` matching; every other character stands for itself."""
    cut = min((i for i in (pattern.find("*"), pattern.find("?")) if i >= 0), default=len(pattern))
    prefix = pattern[:cut]
    parts: list[ColumnElement[bool]] = []
    if prefix:
        parts.append(column >= prefix)
        if ord(prefix[-1]) < 0x10FFFF:
            parts.append(column < prefix[:-1] + chr(ord(prefix[-1]) + 1))
    if dialect == "sqlite":
        glob = pattern.replace("[", "[[]")
        parts.append(column.op("GLOB", is_comparison=True)(glob))
    else:
        like = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        parts.append(column.like(like.replace("*", "%").replace("?", "_"), escape="\\"))
    return and_(*parts)


def _range(value: str) -> tuple[str, str] | None:
    if value.count("-") != 1:
        return None
    low, high = value.split("-")
    return low.strip(), high.strip()


def _date(column: Any, value: str) -> ColumnElement[bool]:
    value = value.replace(".", "")  # ACR-NEMA dates (yyyy.mm.dd) still arrive now and then
    bounds = _range(value)
    if bounds is None:
        return cast(ColumnElement[bool], column == value) if DATE.fullmatch(value) else false()
    low, high = bounds
    if (low and not DATE.fullmatch(low)) or (high and not DATE.fullmatch(high)) or not (low or high):
        return false()
    parts: list[ColumnElement[bool]] = [column != ""]
    if low:
        parts.append(column >= low)
    if high:
        parts.append(column <= high)
    return and_(*parts)


def _time(column: Any, value: str) -> ColumnElement[bool]:
    bounds = _range(value) or (value, value)
    low, high = (norm_time(bounds[0]), norm_time(bounds[1], upper=True))
    valid = re.compile(r"\d{6}\.\d{6}")
    if (low and not valid.fullmatch(low)) or (high and not valid.fullmatch(high)) or not (low or high):
        return false()
    parts: list[ColumnElement[bool]] = [column != ""]
    if low:
        parts.append(column >= low)
    if high:
        parts.append(column <= high)
    return and_(*parts)
