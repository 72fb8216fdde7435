"""Reading the JSON row an ``etl:`` job hands to its route.

Column names are looked up without regard to case: Oracle and DB2 report them
in capitals, PostgreSQL in lower case, and a mapping should not care. Errors
name the column, never its value: they become the reject's reason, which is
grouped and shown in reports (the value is kept with the rejected row).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from esb.errors import TransformError
from esb.exchange import Exchange


def row_of(exchange: Exchange) -> dict[str, Any]:
    """The row (column -> value) the message carries."""
    try:
        row = json.loads(exchange.body)
    except ValueError as exc:
        raise TransformError(f"the message is not a JSON row ({exc.__class__.__name__})") from None
    if not isinstance(row, dict):
        raise TransformError(f"the message is not a JSON row (a {type(row).__name__}, not an object)")
    return row


class Row:
    """A row with case-insensitive column access and text values (None and blanks as '')."""

    def __init__(self, values: Mapping[str, Any], what: str = "row") -> None:
        self.values = dict(values)
        self.what = what
        self._names = {name.casefold(): name for name in values}

    def has(self, column: str) -> bool:
        return column.casefold() in self._names

    def text(self, column: str) -> str:
        """The value as text, stripped; '' when the column is absent or NULL."""
        name = self._names.get(column.casefold())
        value = self.values.get(name) if name is not None else None
        if value is None:
            return ""
        if isinstance(value, bool):
            return "1" if value else "0"
        return str(value).strip()

    def required(self, column: str, meaning: str) -> str:
        """The value of a column that must be there and not be empty."""
        if not self.has(column):
            known = ", ".join(self.values) or "none"
            raise TransformError(f"{self.what}: no column '{column}' ({meaning}); columns: {known}")
        value = self.text(column)
        if not value:
            raise TransformError(f"{self.what}: column '{column}' ({meaning}) is empty")
        return value
