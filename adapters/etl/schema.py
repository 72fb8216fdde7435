"""ETL job state in the engine's own database: checkpoints, runs and rejected rows.

The source is a hospital view we only read, so everything a job must remember
lives here, beside the journal, and is written in one transaction per batch:
the checkpoint, the batch's rejected rows and the run's counters. A job killed
at any point therefore resumes from a checkpoint that agrees with its rejects
and its report. The checkpoint row is also the job's lease (``owner``,
``lease_until``): one node runs a job at a time, and a dead node's lease runs out.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from esb.journal.schema import metadata

#: run modes: the first read from ``since`` (or the beginning), later reads, re-runs of rejected rows
BACKFILL, INCREMENTAL, RETRY = "backfill", "incremental", "retry"
#: run statuses: ``running`` until it ends; ``interrupted`` when its node died or it was stopped
RUNNING, DONE, FAILED, INTERRUPTED = "running", "done", "failed", "interrupted"
#: reject statuses: ``open`` (kept), ``retry`` (asked for by ``esb etl retry``), ``resolved``
OPEN, RETRY_ASKED, RESOLVED = "open", "retry", "resolved"

checkpoints = Table(
    "esb_etl_checkpoints",
    metadata,
    Column("route_id", String(200), primary_key=True),
    # the last (watermark, key) loaded or rejected; NULL: nothing read yet (start at 'since')
    Column("watermark", String(100)),
    Column("watermark_type", String(16)),  # datetime | date | int | decimal | float | str
    Column("last_key", String(200)),
    Column("key_type", String(16)),
    Column("owner", String(200)),
    Column("lease_until", DateTime),
    Column("updated_at", DateTime, nullable=False),
)

runs = Table(
    "esb_etl_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("route_id", String(200), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("owner", String(200), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("rows_read", Integer, nullable=False),
    Column("rows_loaded", Integer, nullable=False),
    Column("rows_rejected", Integer, nullable=False),
    Column("rows_skipped", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),  # the error's type and text; never row data
    Index("ix_esb_etl_runs_route", "route_id", "started_at"),
)

rejects = Table(
    "esb_etl_rejects",
    metadata,
    Column("route_id", String(200), primary_key=True),
    Column("row_key", String(200), primary_key=True),
    Column("watermark", String(100)),
    Column("reason", Text, nullable=False),  # the route's error text
    Column("row_json", Text, nullable=False),  # the row as the route got it
    Column("message_id", String(32)),  # the journal's failed message, for esb messages show
    Column("attempts", Integer, nullable=False),
    Column("first_at", DateTime, nullable=False),
    Column("last_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("resolution", String(16)),  # loaded | superseded | gone
    Index("ix_esb_etl_rejects_status", "route_id", "status"),
)
