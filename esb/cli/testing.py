"""``esb test``: route tests in the Benthos manner (see docs/route-tests.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from esb.cli.common import main_group, settings_of
from esb.routetest.report import as_json, text_lines
from esb.routetest.runner import run_tests


@main_group.command(name="test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--routes",
    "routes",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Route files or directories under test (default: the config's route paths); repeatable.",
)
@click.option("--json", "json_output", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def test_command(ctx: click.Context, paths: tuple[Path, ...], routes: tuple[Path, ...], json_output: bool) -> None:
    """Run the *_test.yaml route tests under PATHS (default: the route paths), offline.

    Exit 0 when every test passes, 1 when one fails (or the routes do not
    lint), 2 when a test file is malformed.
    """
    settings = settings_of(ctx)
    route_paths = routes or settings.route_paths
    report = asyncio.run(run_tests(paths or route_paths, route_paths, settings))
    if json_output or ctx.obj.get("json"):
        click.echo(json.dumps(as_json(report), indent=2, ensure_ascii=False))
    else:
        for line in text_lines(report):
            click.echo(line)
    raise SystemExit(report.exit_code)
