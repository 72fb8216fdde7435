"""``esb dicom``: the image archive from the command line; active collection jobs (A3.4).

``esb dicom collect --from PACS1 --since 2026-11-01 --until 2026-11-29`` runs a
job in this process: with ``--method get`` the instances come back on the
job's own association and go straight into the archive (no engine needed);
with ``--method move`` the remote sends them to the engine's ``dicom:``
listener (settings ``dicom_ae_title``), which must be running. Rerunning the
same source, method and window resumes an unfinished job. ``esb dicom
commitments`` lists storage commitment requests and whether their reports
went out. Study and transaction UIDs are the only identifiers shown; nothing
here is logged above DEBUG.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select

from esb.authz import authorize
from esb.cli.common import DURATION, EXIT_USAGE, emit, fail, guard, journal_of, main_group, progress, settings_of
from esb.errors import ConfigError, LintError
from esb.journal import Journal
from profiles.dicom import collect_schema as t
from profiles.dicom.api import ArchiveApi
from profiles.dicom.collect import METHODS, CollectReport, StudyProgress, dicom_date, report_of, run_collection
from profiles.dicom.commitment import Commitments
from profiles.dicom.commitment_schema import FAILED, PENDING, SENT
from profiles.dicom.config import DicomConfig, load_dicom_config

REPORT_COLUMNS = ["job_id", "source", "method", "since", "until", "status", "runs", "found", "retrieved", "skipped",
                  "failed", "instances", "bytes", "seconds"]  # fmt: skip


@main_group.group()
def dicom() -> None:
    """DICOM archive: collect studies from a remote PACS, list collection jobs and storage commitments."""


def _config() -> DicomConfig:
    try:
        return load_dicom_config()
    except (ConfigError, LintError) as exc:
        fail(f"DICOM config: {exc}", EXIT_USAGE)
        raise  # unreachable: fail() exits


def _archive(ctx: click.Context, journal: Journal, config: DicomConfig) -> ArchiveApi:
    """The engine's archive on the configured database and storage, opened in this process

    (built as ``service:dicom-archive`` builds it, with the on-demand fetcher)."""
    from esb.storage import LocalDiskStore
    from profiles.dicom.archive import Archive
    from profiles.dicom.ondemand import fetcher_for
    from profiles.empi.config import load_empi_config

    settings = settings_of(ctx)
    root = config.storage or settings.data_dir / "dicom"
    master_oid = load_empi_config().master_domain.universal_id
    fetcher = fetcher_for(journal.engine, config, spool_dir=settings.spool_dir, local_ae=settings.dicom_ae_title)
    return Archive(journal.engine, LocalDiskStore(root), config, master_oid, ae_title=settings.dicom_ae_title,
                   fetcher=fetcher)  # fmt: skip


class _DateType(click.ParamType[str]):
    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return dicom_date(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DATE = _DateType()


@dicom.command(name="collect")
@click.option("--from", "source", required=True, help="Remote AE: a name under remote_aes in config/dicom.yaml.")
@click.option("--since", required=True, type=DATE, help="First StudyDate (YYYY-MM-DD, YYYYMMDD, or 7d ago).")
@click.option("--until", default="0d", show_default=True, type=DATE, help="Last StudyDate, inclusive.")
@click.option("--method", type=click.Choice(METHODS), default="get", show_default=True,
              help="get: back on our association; move: to the engine's dicom: listener.")  # fmt: skip
@click.option("--budget", type=DURATION, default=None, help="Pause the job after this long (it resumes next run).")
@click.option("--timeout", type=DURATION, default=60.0, show_default=True, help="DIMSE/network timeout.")
@click.pass_context
@guard
def collect(
    ctx: click.Context, source: str, since: str, until: str, method: str, budget: float | None, timeout: float
) -> None:
    """C-FIND the remote for studies dated SINCE..UNTIL and retrieve those the archive lacks."""
    authorize("dicom.collect")
    if since > until:
        fail(f"the window ends ({until}) before it starts ({since})", EXIT_USAGE)
        return
    config = _config()
    remote = config.remote_aes.get(source)
    if remote is None:
        known = ", ".join(sorted(config.remote_aes)) or "none configured"
        fail(f"unknown remote AE '{source}' (known: {known})", EXIT_USAGE)
        return
    settings = settings_of(ctx)
    with journal_of(ctx) as journal:
        archive = _archive(ctx, journal, config)
        with progress(ctx, None, f"collecting from {source}") as bar:

            def step(done: StudyProgress) -> None:
                bar.length = done.total
                bar.update(1)

            report = run_collection(
                journal.engine, archive, remote, since=since, until=until, method=method,  # type: ignore[arg-type]
                local_ae=settings.dicom_ae_title, spool_dir=settings.spool_dir, progress=step, time_budget=budget,
                timeout=timeout,
            )  # fmt: skip
    _emit_report(ctx, report)
    if report.failed:
        ctx.exit(1)


def _emit_report(ctx: click.Context, report: CollectReport) -> None:
    values = report.as_dict()
    if not ctx.obj.get("json"):
        values["resumed"] = "yes" if report.resumed else "no"
    emit(ctx, values)


@dicom.command(name="jobs")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.pass_context
@guard
def jobs(ctx: click.Context, limit: int) -> None:
    """Collection jobs, newest first, with their figures over all runs."""
    authorize("dicom.read")
    with journal_of(ctx) as journal, journal.engine.connect() as conn:
        rows = conn.execute(select(t.jobs).order_by(t.jobs.c.created_at.desc()).limit(limit)).all()
    emit(ctx, [report_of(r).as_dict() for r in rows], REPORT_COLUMNS)


COMMITMENT_STATUSES = (PENDING, SENT, FAILED)
COMMITMENT_COLUMNS = ["id", "transaction_uid", "calling_ae", "status", "attempts", "committed", "failed",
                      "requested_at", "sent_at", "next_attempt_at", "error"]  # fmt: skip


@dicom.command(name="commitments")
@click.option("--status", type=click.Choice(COMMITMENT_STATUSES), help="Only requests in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_context
@guard
def commitments(ctx: click.Context, status: str | None, limit: int) -> None:
    """Storage commitment requests, newest first: was each report sent, and what did it say?"""
    authorize("dicom.read")
    with journal_of(ctx) as journal:
        rows = Commitments(journal.engine).rows(status=status, limit=limit)
    emit(ctx, [{c: row.get(c) for c in COMMITMENT_COLUMNS} for row in rows], COMMITMENT_COLUMNS)
