"""Shared CLI plumbing: the command group, settings, output as tables or JSON."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.exc import SQLAlchemyError
from tabulate import tabulate

from esb.audit.runtime import trail_for
from esb.errors import ConfigError, EsbError
from esb.journal import Journal, utcnow
from esb.settings import Settings, load_settings
from esb.uri import Duration, UriError

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

EXIT_PROBLEM = 1
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(path_type=Path), envvar="ESB_CONFIG",
              help="Config file (default: config/default.yaml; env ESB_CONFIG).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def main_group(ctx: click.Context, config: Path | None, as_json: bool) -> None:
    """An integration engine for regional medical-imaging platforms."""
    ctx.obj = {"config": config, "json": as_json}


def settings_of(ctx: click.Context) -> Settings:
    try:
        return load_settings(ctx.obj.get("config"))
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
        raise  # unreachable: fail() exits


def fail(message: str, code: int = EXIT_PROBLEM) -> Any:
    click.echo(f"esb: {message}", err=True)
    sys.exit(code)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds") + "Z"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def emit(ctx: click.Context, rows: list[dict[str, Any]] | dict[str, Any], columns: list[str] | None = None) -> None:
    """Rows as a table (humans) or JSON (scripts, with ``--json``)."""
    if ctx.obj.get("json"):
        click.echo(json.dumps(rows, default=_plain, indent=2, ensure_ascii=False))
        return
    if isinstance(rows, dict):
        for key, value in rows.items():
            click.echo(f"{key}: {_plain(value)}")
        return
    if not rows:
        click.echo("(none)")
        return
    columns = columns or list(rows[0])
    table = [[_short(_plain(r.get(c))) for c in columns] for r in rows]
    click.echo(tabulate(table, headers=columns, tablefmt="simple"))


def _short(value: Any, width: int = 60) -> Any:
    if isinstance(value, str) and len(value) > width:
        return value[: width - 1] + "…"
    return value


def guard(fn: Any) -> Any:
    """Turn engine errors into one clear line and exit code 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), EXIT_USAGE)
        except EsbError as exc:
            fail(str(exc), EXIT_PROBLEM)

    return wrapper


# -- helpers for the admin commands (messages, deadletter, routes, replay) ---------


@contextlib.contextmanager
def journal_of(ctx: click.Context) -> Iterator[Journal]:
    """The configured journal; a database failure becomes one line and exit 1.

    The reason comes from the driver error alone, never the SQL statement,
    whose parameters may hold patient data.
    """
    settings = settings_of(ctx)
    journal = Journal(settings.db_url, node_id=f"cli-{settings.node_id}", spool_root=settings.spool_dir)
    try:
        # what the command reads or changes is audited (ATNA) into this database, stored when it ends
        with trail_for(journal.engine, f"cli-{settings.node_id}"):
            yield journal
    except SQLAlchemyError as exc:
        where = journal.engine.url.render_as_string(hide_password=True)
        reason = db_reason(exc)
        hint = ""
        if "no such table" in reason or "does not exist" in reason:
            hint = " (run 'esb db upgrade' first)"
        fail(f"journal database {where}: {reason}{hint}", EXIT_PROBLEM)
    finally:
        journal.close()


def db_reason(exc: SQLAlchemyError) -> str:
    """The driver's first line: the statement and its parameters (patient data) are left out."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


class TimeType(click.ParamType[dt.datetime]):
    """ISO timestamps or relative ages (``30m``, ``1h``, ``2d`` ago), as naive UTC like the journal."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        text = str(value).strip()
        try:
            return utcnow() - dt.timedelta(seconds=Duration.parse(text))
        except UriError:
            pass
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"'{text}' is neither an ISO time (2024-05-01T08:00) nor an age like 30m, 1h, 2d", param, ctx)
        if moment.tzinfo is not None:
            moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
        return moment


class DurationType(click.ParamType[float]):
    """``250ms``, ``30m``, ``2d``: the same spelling as route files."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return float(Duration.parse(str(value)))
        except UriError as exc:
            self.fail(str(exc), param, ctx)


TIME = TimeType()
DURATION = DurationType()


def progress(ctx: click.Context, length: int | None, label: str) -> ProgressBar[int]:
    """A bar on stderr for people at a terminal; hidden for pipes and ``--json``."""
    stream = sys.stderr
    hidden = bool(ctx.obj.get("json")) or not stream.isatty()
    if length is not None:
        return click.progressbar(length=length, label=label, file=stream, hidden=hidden, show_pos=True)
    # A generator has no length hint, so the bar pulses and counts instead (total unknown).
    return click.progressbar(_nothing(), label=label, file=stream, hidden=hidden, show_pos=True)


def _nothing() -> Iterator[int]:
    yield from ()


def human_seconds(value: float) -> str:
    """Seconds in the units route files use (``1.5s``, ``2m``, ``30d``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"
