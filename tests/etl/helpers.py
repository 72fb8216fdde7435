"""Route steps and journal/state readers shared by the ETL tests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from adapters.etl import schema as t
from adapters.etl.consumer import EtlConsumer
from esb.errors import TransformError
from esb.exchange import Exchange
from esb.journal.schema import messages
from esb.runtime.engine import Engine
from profiles.empi import schema as empi

#: keys the "mapping" below cannot map yet (a mapping bug that a later fix removes)
UNMAPPABLE: set[str] = set()


def mapping(exchange: Exchange) -> None:
    """A stand-in for a mapping with a bug: refuses the rows in UNMAPPABLE."""
    key = json.loads(exchange.body)["patient_no"]
    if key in UNMAPPABLE:
        raise TransformError("no mapping for ward code of this row (mapping table v1)")


def patients_route(route_id: str, uri: str, *, before: tuple[str, ...] = ()) -> str:
    """An ETL route: ``before`` steps, the patient mapping, then the EMPI feed."""
    steps = [
        *before,
        'transform: {python: transforms.etl.patients:to_adt, params: {authority: "HIS1&1.2.156.112.1.1&ISO"}}',
        "to: service:empi/feed",
    ]
    return f'route:\n  id: {route_id}\n  from: "{uri}"\n  steps:\n' + "".join(f"    - {step}\n" for step in steps)


def write_route(directory: Path, route_id: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{route_id}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def consumer_of(engine: Engine, route_id: str) -> EtlConsumer:
    consumer = engine.routes[route_id].consumer
    assert isinstance(consumer, EtlConsumer)
    return consumer


def journaled(journal_engine: sa.Engine, route_id: str) -> list[dict[str, Any]]:
    """The route's messages: key, watermark, status, oldest first."""
    query = (
        sa.select(messages.c.headers, messages.c.status, messages.c.error)
        .where(messages.c.route_id == route_id)
        .order_by(messages.c.received_at, messages.c.id)
    )
    with journal_engine.connect() as conn:
        return [
            {"key": r.headers["etl-key"], "watermark": r.headers["etl-watermark"], "status": r.status,
             "error": r.error}
            for r in conn.execute(query)
        ]  # fmt: skip


def table_rows(journal_engine: sa.Engine, table: sa.Table, route_id: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(table)
    if route_id is not None:
        query = query.where(table.c.route_id == route_id)
    with journal_engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def runs(journal_engine: sa.Engine, route_id: str) -> list[dict[str, Any]]:
    return sorted(table_rows(journal_engine, t.runs, route_id), key=lambda r: r["started_at"])


def rejects(journal_engine: sa.Engine, route_id: str) -> dict[str, dict[str, Any]]:
    return {r["row_key"]: r for r in table_rows(journal_engine, t.rejects, route_id)}


def checkpoint(journal_engine: sa.Engine, route_id: str) -> dict[str, Any]:
    (row,) = table_rows(journal_engine, t.checkpoints, route_id)
    return row


def empi_patients(journal_engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """EMPI patients by local ID: sex, birth date, event time (EVN-2)."""
    query = sa.select(empi.patients.c.local_id, empi.patients.c.sex, empi.patients.c.birth_date,
                      empi.patients.c.event_time, empi.patients.c.family)  # fmt: skip
    with journal_engine.connect() as conn:
        return {r.local_id: dict(r._mapping) for r in conn.execute(query)}


def idle(consumer: EtlConsumer, runs_done: int) -> bool:
    """The consumer finished this many runs (poll mode records only reads that found rows)."""
    return len(consumer.reports) >= runs_done


async def pause(exchange: Exchange) -> None:
    """Hold each row a moment, so a batch is still in flight when the test kills the engine."""
    await asyncio.sleep(0.001)
