"""``esb run``, ``esb lint``, ``esb version``, ``esb db upgrade``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from esb import __version__
from esb.authz import authorize
from esb.cli.common import EXIT_PROBLEM, emit, fail, guard, main_group, settings_of
from esb.errors import LintError
from esb.journal import Journal
from esb.journal.database import current_revision, head_revision
from esb.logs import configure
from esb.routes.lint import lint
from esb.runtime.context import EngineContext


@main_group.command()
@click.pass_context
@guard
def run(ctx: click.Context) -> None:
    """Start the engine with every route in the configured route paths."""
    from esb.runtime.engine import Engine

    settings = settings_of(ctx)
    configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(Engine(settings).run_forever())
    except LintError as exc:
        click.echo(str(exc), err=True)
        fail(f"{len(exc.errors)} problem(s) in the route files; the engine did not start", EXIT_PROBLEM)


@main_group.command(name="lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.pass_context
def lint_command(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Check route files as the engine would; print file:line:col: message."""
    settings = settings_of(ctx)
    result = lint(paths or settings.route_paths, EngineContext(settings))
    for error in result.errors:
        click.echo(str(error))
    if ctx.obj.get("json"):
        emit(ctx, {"files": result.files, "routes": len(result.routes), "errors": len(result.errors)})
    elif not result.errors:
        click.echo(f"{result.files} file(s), {len(result.routes)} route(s): ok")
    if result.errors:
        raise SystemExit(EXIT_PROBLEM)


@main_group.command()
@click.pass_context
def version(ctx: click.Context) -> None:
    """Print the engine version."""
    emit(ctx, {"version": __version__}) if ctx.obj.get("json") else click.echo(__version__)


@main_group.group()
def db() -> None:
    """Database schema management."""


@db.command()
@click.pass_context
@guard
def upgrade(ctx: click.Context) -> None:
    """Create or upgrade the journal schema to the newest revision."""
    authorize("db.upgrade")
    settings = settings_of(ctx)
    journal = Journal(settings.db_url, node_id=settings.node_id)
    try:
        journal.upgrade()
        emit(ctx, {"database": journal.engine.url.render_as_string(hide_password=True),
                   "revision": current_revision(journal.engine), "head": head_revision(journal.engine)})  # fmt: skip
    finally:
        journal.close()
