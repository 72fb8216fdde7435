"""Shared CLI plumbing: the command group, settings, output as tables or JSON."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from esb.errors import ConfigError, EsbError
from esb.settings import Settings, load_settings

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
