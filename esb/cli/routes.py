"""``esb routes list|show``: the configured routes as the engine would load them.

Routes are loaded through lint, so what is listed is exactly what ``esb run``
would start; files with errors are reported on stderr and make the exit code 1.
Message counts come from the journal when it is reachable and are left out,
with a note, when it is not: route files can be read on a machine with no
database access.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from esb.authz import authorize
from esb.cli.common import EXIT_PROBLEM, db_reason, emit, fail, guard, human_seconds, main_group, settings_of
from esb.journal import Journal, admin
from esb.routes import model as m
from esb.routes.lint import LintResult, LoadedRoute, lint
from esb.runtime.context import EngineContext
from esb.settings import Settings
from esb.uri import did_you_mean, redact

STATUSES = ("received", "processed", "filtered", "failed")


@main_group.group()
def routes() -> None:
    """The routes in the configured route paths."""


def _load(settings: Settings) -> LintResult:
    result = lint(settings.route_paths, EngineContext(settings))
    for error in result.errors:
        click.echo(str(error), err=True)
    return result


def _counts(settings: Settings) -> dict[str, dict[str, int]] | None:
    journal = Journal(settings.db_url, node_id=f"cli-{settings.node_id}")
    try:
        return admin.route_counts(journal.engine)
    except SQLAlchemyError as exc:
        click.echo(f"esb: message counts left out: journal not readable ({db_reason(exc)})", err=True)
        return None
    finally:
        journal.close()


@routes.command(name="list")
@click.pass_context
@guard
def list_command(ctx: click.Context) -> None:
    """Every route that would start: id, source, steps, store mode, file, message counts."""
    authorize("routes.read")
    settings = settings_of(ctx)
    result = _load(settings)
    counts = _counts(settings)
    rows: list[dict[str, Any]] = []
    for loaded in sorted(result.routes, key=lambda r: r.route.id):
        route = loaded.route
        row: dict[str, Any] = {
            "id": route.id,
            "from": redact(route.source.value),
            "steps": len(route.steps),
            "store": route.store,
            "file": route.file,
        }
        if counts is not None:
            if ctx.obj.get("json"):
                row["messages"] = counts.get(route.id, {})
            else:
                row.update({status: counts.get(route.id, {}).get(status, 0) for status in STATUSES})
        rows.append(row)
    emit(ctx, rows)
    if result.errors:
        raise SystemExit(EXIT_PROBLEM)


@routes.command()
@click.argument("route_id")
@click.pass_context
@guard
def show(ctx: click.Context, route_id: str) -> None:
    """One route: source, steps, on_error, retry policy, where it is defined."""
    authorize("routes.read", target=route_id)
    settings = settings_of(ctx)
    result = _load(settings)
    found = {loaded.route.id: loaded for loaded in result.routes}
    loaded = found.get(route_id)
    if loaded is None:
        broken = f"; {len(result.errors)} problem(s) in the route files, see 'esb lint'" if result.errors else ""
        fail(f"no route '{route_id}'{did_you_mean(route_id, found) or ''}{broken}")
        return
    if ctx.obj.get("json"):
        emit(ctx, _describe(loaded))
        return
    info = _describe(loaded)
    for key in ("id", "description", "from", "file", "store", "concurrency", "max_pending", "retention", "retry"):
        if info.get(key) not in (None, ""):
            click.echo(f"{key}: {info[key]}")
    for key in ("steps", "on_error"):
        lines = info[key]
        click.echo(f"{key}:" if lines else f"{key}: (none)")
        for line in lines:
            click.echo(f"  {line}")


def _describe(loaded: LoadedRoute) -> dict[str, Any]:
    route = loaded.route
    return {
        "id": route.id,
        "description": route.description,
        "from": redact(route.source.value),
        "adapter": loaded.adapter.scheme,
        "file": f"{route.file}:{route.position.line}",
        "store": route.store,
        "concurrency": route.concurrency,
        "max_pending": route.max_pending,
        "retention": route.retention,
        "retry": render_retry(route.retry),
        "steps": render_steps(route.steps),
        "on_error": render_steps(route.on_error),
    }


# -- steps as text: one line per step, nested steps indented, each with its line ----


def render_retry(policy: m.RetryPolicy) -> str:
    return (
        f"{policy.max_attempts} attempts, wait {human_seconds(policy.delay)} x{policy.multiplier:g} "
        f"(at most {human_seconds(policy.max_delay)})"
    )


def render_steps(steps: tuple[m.Step, ...], depth: int = 0) -> list[str]:
    lines: list[str] = []
    for step in steps:
        pad = "  " * depth
        lines.append(f"{pad}{_step_text(step)}  (line {step.position.line})")
        if isinstance(step, m.ChoiceStep):
            for when in step.whens:
                lines.append(f"{pad}  when {_predicate(when.predicate)}:")
                lines.extend(render_steps(when.steps, depth + 2))
            if step.otherwise:
                lines.append(f"{pad}  otherwise:")
                lines.extend(render_steps(step.otherwise, depth + 2))
        elif isinstance(step, m.SplitStep):
            lines.extend(render_steps(step.steps, depth + 1))
    return lines


def _pairs(values: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _step_text(step: m.Step) -> str:
    text: str
    if isinstance(step, m.ToStep):
        text = f"to {step.uri.value}" + (f" (retry: {render_retry(step.retry)})" if step.retry else "")
    elif isinstance(step, m.WiretapStep):
        text = f"wiretap {step.uri.value}"
    elif isinstance(step, m.MulticastStep):
        text = "multicast " + ", ".join(u.value for u in step.uris)
    elif isinstance(step, m.EnrichStep):
        text = f"enrich from {step.uri.value}" + (f" (strategy {step.strategy})" if step.strategy else "")
    elif isinstance(step, m.TransformStep):
        text = f"transform {step.kind} {step.target}" + (f" ({_pairs(step.params)})" if step.params else "")
    elif isinstance(step, m.ValidateStep):
        text = f"validate {step.kind} {step.target}" + (f" ({_pairs(step.options)})" if step.options else "")
    elif isinstance(step, m.FilterStep):
        text = f"filter: keep if {_predicate(step.predicate)}"
    elif isinstance(step, m.ChoiceStep):
        text = "choice"
    elif isinstance(step, m.SetHeaderStep):
        if step.value is not None:
            source = repr(step.value)
        else:
            source = f"xpath {step.xpath}" if step.xpath is not None else f"python {step.python}"
        text = f"set-header {step.name} = {source}"
    elif isinstance(step, m.SplitStep):
        text = f"split by {step.kind} {step.expression}, each part:"
    elif isinstance(step, m.LogStep):
        text = f"log {step.level}: {step.message}"
    elif isinstance(step, m.ReplyStep):
        text = f"reply {_pairs(step.values)}"
    else:
        text = type(step).__name__
    return text


def _predicate(predicate: m.Predicate) -> str:
    if predicate.kind != "header":
        return f"{predicate.kind} {predicate.expression}"
    if predicate.header_value is None:
        return f"header {predicate.expression} is set"
    operator = "matches" if predicate.header_regex else "=="
    return f"header {predicate.expression} {operator} {predicate.header_value!r}"
