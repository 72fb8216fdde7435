"""``esb listeners list|deliveries|resend``: who heard about which patient event (A1.15, A1.16).

A listener's events are ordinary journal deliveries to its URI, so its log is
the delivery table filtered by that URI, and a resend is a copy of one row
queued again (the original row and its attempts stay as they were). The
listeners file is the one the EMPI loads: ``listeners`` in the EMPI config,
``ESB_EMPI_LISTENERS`` overriding it; run the CLI with the engine's
environment, so URIs built from ``${...}`` come out the same.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import click

from esb.authz import authorize
from esb.cli.common import emit, fail, guard, journal_of, main_group
from esb.journal import admin
from esb.uri import redact
from profiles.empi.config import load_empi_config
from profiles.empi.listeners import Listener, load_listeners

STATUSES = ("pending", "inflight", "delivered", "dead", "dropped")
LIST_COLUMNS = ["name", "uri", "format", "events", "enabled", *STATUSES]
DELIVERY_COLUMNS = [
    "id", "message_id", "event", "status", "attempts", "last_error", "created_at", "delivered_at", "resend_of",
]  # fmt: skip


def configured() -> tuple[Path | None, list[Listener]]:
    """The listeners file the EMPI would load, and its listeners (errors: file:line:col, exit 2)."""
    path = load_empi_config().listeners_file
    return path, (load_listeners(Path(path)) if path else [])


def listener_named(name: str) -> Listener:
    path, listeners = configured()
    for listener in listeners:
        if listener.name == name:
            return listener
    names = [x.name for x in listeners]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (listeners: {', '.join(names) or 'none'})"
    fail(f"no listener '{name}' in {path or 'the EMPI config (no listeners file)'}{hint}")
    raise AssertionError("fail() exits")


@main_group.group()
def listeners() -> None:
    """The EMPI's listeners and the journal of what each one received."""


@listeners.command(name="list")
@click.pass_context
@guard
def list_command(ctx: click.Context) -> None:
    """Every configured listener with its deliveries counted by status."""
    authorize("listeners.read")
    path, found = configured()
    if not found and not ctx.obj.get("json"):
        click.echo(f"no listeners configured ({path or 'no listeners file'})", err=True)
    with journal_of(ctx) as journal:
        counts = admin.delivery_counts(journal.engine, [redact(x.uri) for x in found])
    rows = [
        {
            "name": x.name, "uri": redact(x.uri), "format": x.format, "events": ",".join(x.events),
            "enabled": x.enabled, **{s: counts.get(redact(x.uri), {}).get(s, 0) for s in STATUSES},
        }
        for x in found
    ]  # fmt: skip
    emit(ctx, rows, LIST_COLUMNS)


@listeners.command()
@click.argument("name")
@click.option("--status", type=click.Choice(STATUSES), help="Only deliveries in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_context
@guard
def deliveries(ctx: click.Context, name: str, status: str | None, limit: int) -> None:
    """The delivery log of one listener, newest first: did it receive each event?"""
    authorize("listeners.read")
    listener = listener_named(name)
    with journal_of(ctx) as journal:
        found = admin.deliveries_to(journal.engine, redact(listener.uri), status=status, limit=limit, with_headers=True)
    rows = [_delivery(row) for row in found]
    emit(ctx, rows, DELIVERY_COLUMNS)


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    headers = row.pop("headers", None) or {}
    return {**row, "event": headers.get("empi-event", ""), "resend_of": headers.get("esb-resend-of")}


@listeners.command()
@click.argument("delivery_id")
@click.pass_context
@guard
def resend(ctx: click.Context, delivery_id: str) -> None:
    """Send one delivery's message again to its listener; prints the new delivery id (A1.16)."""
    authorize("listeners.resend")
    with journal_of(ctx) as journal:
        new_id = admin.resend_delivery(journal.engine, delivery_id)
    if ctx.obj.get("json"):
        emit(ctx, {"resent": delivery_id, "delivery": new_id})
    else:
        click.echo(new_id)
