"""Route steps used by the ``table:`` tests (named in route files as tests.adapters.table.helpers:NAME)."""

from __future__ import annotations

import asyncio
import json

from esb.errors import ValidationError
from esb.exchange import Exchange


def refuse_flagged(exchange: Exchange) -> None:
    """Fail the route for a row whose name says BAD, like a mapping that finds bad data."""
    if "BAD" in json.loads(exchange.body).get("name", ""):
        raise ValidationError("name flagged as bad by the test")


def to_out_row(exchange: Exchange) -> bytes:
    """The downstream row: the staging row's key and MRN (the route's own mapping step)."""
    row = json.loads(exchange.body)
    return json.dumps({"source_id": row["id"], "mrn": row["mrn"], "name": row["name"]}).encode()


async def pause(exchange: Exchange) -> None:
    """A little work per row, so an engine killed mid-stream has a batch in flight."""
    await asyncio.sleep(0.003)
