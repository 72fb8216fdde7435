"""``esb worklist items|performed``: the Modality Worklist as modalities see it, and the steps they performed.

Read-only views of ``esb_worklist_items`` and ``esb_worklist_performed``
(``docs/worklist.md``); orders come in over HL7 v2, not from here. Needs the
``dicom.read`` permission: the worklist is part of the imaging side.
"""

from __future__ import annotations

import click
from sqlalchemy import select

from esb.authz import authorize
from esb.cli.common import emit, guard, journal_of, main_group
from profiles.worklist.schema import COMPLETED, DISCONTINUED, SCHEDULED, STARTED, items, performed

ITEM_COLUMNS = ["accession_number", "sps_id", "station_ae", "modality", "start_date", "start_time", "status",
                "patient_id", "study_uid", "updated_at"]  # fmt: skip
PERFORMED_COLUMNS = ["sop_uid", "status", "station_ae", "modality", "accession_numbers", "created_at", "updated_at"]


@main_group.group()
def worklist() -> None:
    """Modality Worklist: scheduled steps and the procedure steps modalities performed."""


@worklist.command(name="items")
@click.option("--station", metavar="AE", help="Only this Scheduled Station AE Title.")
@click.option("--date", "day", metavar="YYYYMMDD", help="Only steps scheduled to start that day.")
@click.option("--status", type=click.Choice([SCHEDULED, STARTED, COMPLETED, DISCONTINUED]), help="Only this status.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.pass_context
@guard
def items_command(ctx: click.Context, station: str | None, day: str | None, status: str | None, limit: int) -> None:
    """Scheduled procedure steps, earliest start first."""
    authorize("dicom.read")
    query = select(*[items.c[c] for c in ITEM_COLUMNS]).order_by(items.c.start_date, items.c.start_time)
    if station:
        query = query.where(items.c.station_ae == station)
    if day:
        query = query.where(items.c.start_date == day)
    if status:
        query = query.where(items.c.status == status)
    with journal_of(ctx) as journal, journal.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query.limit(limit))]
    emit(ctx, rows, ITEM_COLUMNS)


@worklist.command(name="performed")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_context
@guard
def performed_command(ctx: click.Context, limit: int) -> None:
    """Modality Performed Procedure Steps (MPPS), newest first."""
    authorize("dicom.read")
    query = select(*[performed.c[c] for c in PERFORMED_COLUMNS]).order_by(performed.c.updated_at.desc())
    with journal_of(ctx) as journal, journal.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query.limit(limit))]
    emit(ctx, rows, PERFORMED_COLUMNS)
