"""``esb etl``: run ETL jobs in the foreground, see where they are, and re-run rejected rows (A3.1-A3.3).

``esb etl run his-patients`` runs the route's job in this process until the
view is exhausted, with a progress bar on stderr and a report at the end;
``--since 2020-01-01`` (re)starts a historical backfill there. A job that an
engine (or another ``esb etl run``) holds is refused: one node at a time.
``esb etl retry his-patients --all`` marks rejected rows for the job to read
again (current values) before its next read. Reports show counts and the
routes' error texts; row values are only shown by ``esb etl rejects``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click

from esb.authz import authorize
from esb.cli.common import EXIT_PROBLEM, EXIT_USAGE, emit, fail, guard, journal_of, main_group, progress, settings_of
from esb.errors import LintError

#: reasons shown in the report, most frequent first
TOP_REASONS = 5


@main_group.group()
def etl() -> None:
    """ETL jobs (etl: routes): run one, show checkpoints and runs, list and retry rejected rows."""


@etl.command(name="run")
@click.argument("route_id")
@click.option("--routes", "routes_path", type=click.Path(path_type=Path), default=None,
              help="Route file or directory (default: the configured routes.paths).")  # fmt: skip
@click.option("--reset", is_flag=True, help="Forget the checkpoint: read from 'since' (or the start) again.")
@click.option("--since", default=None, help="Start at this watermark (ISO date/time, number, or an age like 30d).")
@click.pass_context
@guard
def run(ctx: click.Context, route_id: str, routes_path: Path | None, reset: bool, since: str | None) -> None:
    """Run ROUTE_ID's job here until its view is exhausted, then print a report.

    Rows already loaded are skipped (each row version is loaded once), so a
    rerun with --reset or --since only loads what changed or was not loaded.
    """
    authorize("etl.run")
    # logging stays unconfigured: warnings reach stderr, and the bar and the report say what INFO lines would
    settings = settings_of(ctx)
    paths = [routes_path] if routes_path is not None else list(settings.route_paths)
    started = time.monotonic()
    # one warning per failed message would scroll the bar away: the rejects are in the report
    route_log = logging.getLogger("esb.route")
    level = route_log.level
    route_log.setLevel(logging.ERROR)
    try:
        reports, unreadable = asyncio.run(_run(ctx, settings, route_id, paths, reset, since))
    except LintError as exc:
        click.echo(str(exc), err=True)
        fail(f"route '{route_id}' cannot run: {len(exc.errors)} problem(s) in its route file", EXIT_USAGE)
        return
    finally:
        route_log.setLevel(level)
    report = _summary(route_id, reports, time.monotonic() - started, unreadable)
    _emit_report(ctx, report)
    if report["status"] != "done":
        ctx.exit(EXIT_PROBLEM)


async def _run(
    ctx: click.Context, settings: Any, route_id: str, paths: list[Path], reset: bool, since: str | None
) -> tuple[list[Any], int]:
    from adapters.etl.foreground import ForegroundJob

    async with ForegroundJob(settings, route_id, paths) as job:
        with progress(ctx, None, f"etl {route_id}") as bar:

            def total(rows: int) -> None:
                bar.length = rows

            reports = await job.run(since=since, reset=reset, progress=bar.update, total=total)
        return reports, await job.unreadable()


def _summary(route_id: str, reports: list[Any], elapsed: float, unreadable: int) -> dict[str, Any]:
    reasons: Counter[str] = Counter()
    totals = {"read": 0, "loaded": 0, "rejected": 0, "skipped": 0}
    for report in reports:
        reasons.update(report.reasons)
        for name in totals:
            totals[name] += getattr(report.counts, name)
    failed = next((r for r in reports if r.status != "done"), None)
    busy = sum(r.seconds for r in reports)
    summary: dict[str, Any] = {
        "route": route_id,
        "runs": ", ".join(r.mode for r in reports) or "none",
        "status": failed.status if failed is not None else "done",
        **totals,
        "elapsed": round(elapsed, 1),  # start-up included
        "rows_per_second": round(totals["read"] / busy, 1) if busy > 0 else 0.0,  # while reading
        "unreadable": unreadable,
        "reasons": [{"reason": text, "rows": n} for text, n in reasons.most_common(TOP_REASONS)],
    }
    if failed is not None and failed.error:
        summary["error"] = failed.error
    return summary


def _emit_report(ctx: click.Context, report: dict[str, Any]) -> None:
    if ctx.obj.get("json"):
        emit(ctx, report)
        return
    shown = {k: v for k, v in report.items() if k != "reasons"}
    shown["elapsed"] = f"{report['elapsed']}s"
    if not report["unreadable"]:
        del shown["unreadable"]  # rows without watermark or key: only worth a line when there are some
    emit(ctx, shown)
    if report["reasons"]:
        click.echo("top reasons:")
        for item in report["reasons"]:
            click.echo(f"  {item['rows']:>6}  {item['reason']}")


@etl.command(name="status")
@click.argument("route_id", required=False)
@click.pass_context
@guard
def status(ctx: click.Context, route_id: str | None) -> None:
    """Per job: checkpoint, who holds it, the last run and its counts, rejects not resolved."""
    from adapters.etl.state import job_status

    authorize("etl.read")
    with journal_of(ctx) as journal:
        rows = job_status(journal.engine, [route_id] if route_id else None)
    if route_id and not ctx.obj.get("json"):
        emit(ctx, rows[0])
        return
    columns = ["route", "watermark", "held_by", "last_run", "run_status", "started", "read", "loaded", "rejected",
               "skipped", "open_rejects"]  # fmt: skip
    emit(ctx, rows, columns)


@etl.command(name="rejects")
@click.argument("route_id")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json includes each row as the route got it.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many (oldest first).")
@click.pass_context
@guard
def rejects(ctx: click.Context, route_id: str, fmt: str, limit: int | None) -> None:
    """Rejected rows of ROUTE_ID not resolved yet: key, reason, attempts (open, or retry asked)."""
    from adapters.etl.state import open_rejects

    authorize("etl.read")
    with journal_of(ctx) as journal:
        rows = open_rejects(journal.engine, route_id, limit)
    if fmt == "json" or ctx.obj.get("json"):
        for row in rows:
            row["row"] = json.loads(row.pop("row_json"))
        click.echo(json.dumps(rows, default=_plain, indent=2, ensure_ascii=False))
        return
    columns = ["row_key", "watermark", "status", "attempts", "last_at", "reason"]
    emit(ctx, rows, columns)


def _plain(value: Any) -> Any:
    return value.isoformat(timespec="seconds") + "Z" if hasattr(value, "isoformat") else str(value)


@etl.command(name="retry")
@click.argument("route_id")
@click.option("--key", default=None, help="The rejected row's key (as 'esb etl rejects' shows it).")
@click.option("--all", "every", is_flag=True, help="Every open reject of the route.")
@click.pass_context
@guard
def retry(ctx: click.Context, route_id: str, key: str | None, every: bool) -> None:
    """Mark rejected rows for the job to read again (current values) before its next read.

    Run the job (esb etl run ROUTE_ID, or let the engine's next poll or tick
    come): each row then loads (resolved) or is rejected again with the new reason.
    """
    from adapters.etl.state import ask_retry

    authorize("etl.run")
    if (key is None) == (not every):
        fail("give --key KEY or --all", EXIT_USAGE)
        return
    with journal_of(ctx) as journal:
        marked = ask_retry(journal.engine, route_id, key)
    if not marked:
        what = f"with key '{key}'" if key is not None else "at all"
        fail(f"route '{route_id}' has no open reject {what} (see esb etl rejects {route_id})")
        return
    emit(ctx, {"route": route_id, "marked": marked, "next": f"esb etl run {route_id}"})
