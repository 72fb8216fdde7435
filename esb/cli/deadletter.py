"""``esb deadletter list|retry|drop``: deliveries that gave up, and what to do with them.

Retry and drop need ids, ``--route`` or ``--all``, so a bare command never
touches the whole queue by accident. Large selections are worked in batches of
:data:`BATCH`, each its own transaction, so a progress bar can follow them and
an interrupted run keeps what it already did.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click
from sqlalchemy import Engine

from esb.authz import authorize
from esb.cli.common import emit, guard, journal_of, main_group, progress
from esb.journal import admin

BATCH = 200
LIST_COLUMNS = ["id", "message_id", "route_id", "destination", "attempts", "updated_at", "last_error"]


@main_group.group()
def deadletter() -> None:
    """Deliveries that exhausted their retries or were parked by on_error."""


@deadletter.command(name="list")
@click.option("--route", metavar="ROUTE_ID", help="Only deliveries queued by this route.")
@click.option("--destination", metavar="URI", help="Only deliveries to this destination (exact URI).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.pass_context
@guard
def list_command(ctx: click.Context, route: str | None, destination: str | None, limit: int) -> None:
    """Dead deliveries, most recently failed first."""
    authorize("messages.read")
    with journal_of(ctx) as journal:
        rows = admin.list_dead(journal.engine, route=route, destination=destination, limit=limit)
    emit(ctx, rows, LIST_COLUMNS)


def _selection(fn: Callable[..., None]) -> Callable[..., None]:
    fn = click.option("--all", "everything", is_flag=True, help="Every dead delivery.")(fn)
    fn = click.option("--route", metavar="ROUTE_ID", help="Every dead delivery of this route.")(fn)
    return click.argument("ids", nargs=-1)(fn)


@deadletter.command()
@_selection
@click.pass_context
@guard
def retry(ctx: click.Context, ids: tuple[str, ...], route: str | None, everything: bool) -> None:
    """Queue dead deliveries again (a parked dead-letter: message re-runs its route)."""
    _apply(ctx, "retried", admin.retry_dead, ids, route, everything)


@deadletter.command()
@_selection
@click.pass_context
@guard
def drop(ctx: click.Context, ids: tuple[str, ...], route: str | None, everything: bool) -> None:
    """Give up on dead deliveries; rows stay in the journal marked 'dropped'."""
    _apply(ctx, "dropped", admin.drop_dead, ids, route, everything)


def _apply(
    ctx: click.Context,
    verb: str,
    action: Callable[[Engine, Sequence[str]], list[str]],
    ids: tuple[str, ...],
    route: str | None,
    everything: bool,
) -> None:
    authorize("deadletter.manage")
    chosen_by = [name for name, given in (("IDS", bool(ids)), ("--route", bool(route)), ("--all", everything)) if given]
    if not chosen_by:
        raise click.UsageError("name the deliveries: give IDS, --route ROUTE_ID or --all")
    if len(chosen_by) > 1:
        raise click.UsageError(f"give only one of IDS, --route, --all (got {' and '.join(chosen_by)})")
    done: list[str] = []
    with journal_of(ctx) as journal:
        chosen = admin.select_dead(journal.engine, ids, route=route, everything=everything)
        with progress(ctx, len(chosen), verb) as bar:
            for start in range(0, len(chosen), BATCH):
                batch = chosen[start : start + BATCH]
                done.extend(action(journal.engine, batch))
                bar.update(len(batch))
    if ctx.obj.get("json"):
        emit(ctx, {verb: done})
    else:
        click.echo(f"{verb} {len(done)} deliver{'y' if len(done) == 1 else 'ies'}")
