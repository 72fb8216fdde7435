"""``esb messages list|show|search|prune`` and ``esb replay``: the journal seen by an admin.

Everything here reads or writes the database only, so it works from any machine
that reaches the cluster's database. Bodies hold patient data: ``show`` prints
one only when asked (``--body``), and list/search never do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from esb.authz import authorize
from esb.cli.common import (
    DURATION,
    EXIT_PROBLEM,
    EXIT_USAGE,
    TIME,
    _plain,
    emit,
    fail,
    guard,
    journal_of,
    main_group,
    progress,
    settings_of,
)
from esb.components import Adapter
from esb.errors import ComponentError
from esb.journal import admin
from esb.runtime.context import EngineContext
from esb.uri import UriError, redact

STATUSES = ("received", "processed", "filtered", "failed")
LIST_COLUMNS = ["id", "route_id", "status", "received_at", "attempts", "body_size", "replay_of", "error"]

route_option = click.option("--route", "route", metavar="ROUTE_ID", help="Only this route's messages.")
status_option = click.option("--status", type=click.Choice(STATUSES), help="Only messages in this state.")
since_option = click.option(
    "--since", type=TIME, help="Received at or after: ISO time (UTC unless it has an offset) or age (30m, 1h, 2d)."
)
limit_option = click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)


@main_group.group()
def messages() -> None:
    """Inspect, search and prune journaled messages."""


@messages.command(name="list")
@route_option
@status_option
@since_option
@click.option("--until", type=TIME, help="Received before: ISO time or age (30m, 1h, 2d).")
@limit_option
@click.pass_context
@guard
def list_command(
    ctx: click.Context,
    route: str | None,
    status: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
) -> None:
    """Journaled messages, newest first (no bodies)."""
    authorize("messages.read")
    with journal_of(ctx) as journal:
        rows = admin.list_messages(journal.engine, route=route, status=status, since=since, until=until, limit=limit)
    emit(ctx, rows, LIST_COLUMNS)


@messages.command()
@click.argument("text")
@route_option
@status_option
@since_option
@limit_option
@click.pass_context
@guard
def search(
    ctx: click.Context, text: str, route: str | None, status: str | None, since: dt.datetime | None, limit: int
) -> None:
    """Messages whose body or headers contain TEXT; exit 1 when none does, like grep.

    Bodies are scanned in the client, so narrow big journals with the filters.
    """
    authorize("messages.read")
    with journal_of(ctx) as journal:
        rows = list(admin.search_messages(journal.engine, text, route=route, status=status, since=since, limit=limit))
    emit(ctx, rows, LIST_COLUMNS)
    if not rows:
        raise SystemExit(EXIT_PROBLEM)


@messages.command()
@click.argument("message_id")
@click.option("--body", "with_body", is_flag=True, help="Also print the body (it may hold patient data).")
@click.option("--raw", is_flag=True, help="Write only the body's bytes to stdout, e.g. to save them to a file.")
@click.pass_context
@guard
def show(ctx: click.Context, message_id: str, with_body: bool, raw: bool) -> None:
    """A message's metadata, headers and deliveries with every attempt."""
    authorize("messages.read", target=message_id)
    with journal_of(ctx) as journal:
        message = admin.get_message(journal.engine, message_id)
    body: bytes | None = message.pop("body")
    if raw or with_body:
        if body is None:
            fail(f"message {message_id} kept no body (route store mode '{message['store_mode']}')", EXIT_PROBLEM)
        assert body is not None
        if raw:
            click.echo(body, nl=False)
            return
        message["body"] = _text(body, message["headers"])
    if ctx.obj.get("json"):
        emit(ctx, message)
        return
    _print_message(message)


def _text(body: bytes, headers: dict[str, str]) -> str:
    charset = (headers or {}).get("charset", "utf-8")
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _print_message(message: dict[str, Any]) -> None:
    for key in admin.MESSAGE_COLUMNS:
        if message.get(key) is not None:
            click.echo(f"{key}: {_plain(message[key])}")
    headers = message.get("headers") or {}
    click.echo("headers:" if headers else "headers: (none)")
    for name, value in sorted(headers.items()):
        click.echo(f"  {name}: {value}")
    deliveries = message["deliveries"]
    click.echo("deliveries:" if deliveries else "deliveries: (none)")
    for d in deliveries:
        click.echo(f"  {d['id']} -> {d['destination']}: {d['status']} ({d['attempts']}/{d['max_attempts']} attempts)")
        if d.get("last_error"):
            click.echo(f"    last error: {d['last_error']}")
        for a in d["attempt_log"]:
            error = f": {a['error']}" if a.get("error") else ""
            took = f"{a['duration_ms']:.0f} ms"
            click.echo(f"    #{a['attempt']} {_plain(a['at'])} on {a['node']}: {a['outcome']} ({took}){error}")
    if "body" in message:
        click.echo("body:")
        click.echo(message["body"])


@messages.command()
@click.option("--older-than", type=DURATION, help="Age of finished messages to remove (default: storage.retention).")
@click.pass_context
@guard
def prune(ctx: click.Context, older_than: float | None) -> None:
    """Delete finished messages past retention, in batches (open deliveries keep theirs)."""
    authorize("messages.prune")
    settings = settings_of(ctx)
    age = older_than if older_than is not None else settings.retention
    retention = dt.timedelta(seconds=age) if age is not None else None
    total = 0
    with journal_of(ctx) as journal, progress(ctx, None, "pruning") as bar:
        while batch := journal.prune(retention):
            total += batch
            bar.update(batch)
    if ctx.obj.get("json"):
        emit(ctx, {"pruned": total})
    else:
        click.echo(f"pruned {total} message(s)")


@main_group.command()
@click.argument("message_id")
@click.option("--to", "destination", metavar="URI", help="Deliver once more to this endpoint instead of re-running.")
@click.pass_context
@guard
def replay(ctx: click.Context, message_id: str, destination: str | None) -> None:
    """Run a message through its route again (or deliver it to --to); prints the new id.

    A running engine that has the route (or the destination) picks it up
    within a second.
    """
    authorize("messages.replay", target=message_id)
    settings = settings_of(ctx)
    if destination is not None:
        _check_destination(EngineContext(settings), destination)
        stored = redact(destination)
        if stored != destination:
            click.echo(
                f"note: the journal keeps '{stored}' without its password; a node delivers it with the "
                "password its routes give that destination",
                err=True,
            )
        destination = stored
    with journal_of(ctx) as journal:
        new_id = admin.replay(journal.engine, message_id, to=destination)
    if ctx.obj.get("json"):
        emit(ctx, {"id": new_id, "replay_of": message_id, "to": destination})
    else:
        click.echo(new_id)


def _check_destination(context: EngineContext, uri: str) -> None:
    """Refuse a destination no engine could send to, before anything is written."""
    try:
        adapter, endpoint = context.endpoint(uri)
    except (ComponentError, UriError) as exc:
        fail(f"--to '{redact(uri)}': {exc}", EXIT_USAGE)
        return
    if type(adapter).producer is Adapter.producer:
        fail(f"--to '{redact(uri)}': '{adapter.scheme}:' cannot be used as a destination", EXIT_USAGE)
    problems = adapter.check(endpoint, consumer=False)
    if problems:
        fail(f"--to '{redact(uri)}': {'; '.join(problems)}", EXIT_USAGE)
