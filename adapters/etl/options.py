"""``etl:`` options, how they are read from the URI, and what lint checks.

A database URL is itself a URL: ``postgresql+psycopg://u:p@h/db?sslmode=require``.
Read with the ordinary query parser its ``+`` would become a space and its own
``&`` would split it, so :func:`query_values` splits the query on ``&`` only
where an ``etl:`` option name follows, and keeps the ``url`` value as written
(SQLAlchemy decodes its own escapes). Everything else is percent-decoded; a
``+`` stays a ``+`` (``since=2024-01-01T00:00:00+08:00``), except in
``schedule``, where it may stand for a space like in ``timer:``.
"""

from __future__ import annotations

import difflib
import zoneinfo
from dataclasses import dataclass, field, fields
from urllib.parse import unquote

from adapters.table.database import staging_engine
from adapters.timer import cron_problem
from esb.errors import ConfigError
from esb.uri import Duration, did_you_mean


@dataclass(frozen=True, kw_only=True)
class EtlOptions:
    view: str = field(metadata={"doc": "View or table to extract from (schema.view allowed); it is only read."})
    url: str = field(
        metadata={
            "doc": "SQLAlchemy URL of the hospital database (e.g. postgresql+psycopg://..., "
            "mysql+pymysql://..., oracle+oracledb://..., odbc:///?odbc_connect=...&dialect=...); "
            "usually ${HIS_DB_URL}."
        }
    )
    watermark: str = field(
        metadata={"doc": "Column that grows when a row is added or changed (updated_at, a sequence number)."}
    )
    key: str = field(metadata={"doc": "Column that tells rows apart (patient_no); ties on the watermark go by it."})
    batch: int = field(default=500, metadata={"doc": "Rows read per query; the checkpoint moves after each batch."})
    schedule: str | None = field(
        default=None,
        metadata={
            "doc": "Cron schedule ('0 2 * * *'): run at each tick, once per cluster, until the view is exhausted. "
            "Without it the view is polled every 'poll'."
        },
    )
    timezone: str = field(default="UTC", metadata={"doc": "IANA time zone the schedule is read in."})
    poll: Duration = field(
        default=Duration(5.0), metadata={"doc": "Pause between two reads when no schedule is given."}
    )
    since: str | None = field(
        default=None,
        metadata={
            "doc": "Watermark to start from when the job has no checkpoint yet (inclusive): ISO 8601 "
            "(2020-01-01, 2020-01-01T08:00), a number, or an age like 30d; empty: the whole view."
        },
    )
    until: str | None = field(
        default=None, metadata={"doc": "Rows with a watermark at or past this are not read (exclusive bound)."}
    )
    columns: tuple[str, ...] = field(
        default=(),
        metadata={
            "doc": "Columns put into the message (comma list; the watermark and key are always read); "
            "empty: every column of the view."
        },
    )
    parallel: int = field(
        default=1,
        metadata={
            "doc": "Rows of a batch handed to the route at once; 1 keeps the view's order (an EMPI feed "
            "matches near-duplicates reliably only in order)."
        },
    )
    wait: bool = field(
        default=True,
        metadata={
            "doc": "A row counts as loaded once its route completed (a failed route rejects the row); "
            "false: once journaled (faster; failures then stay in the journal, not in the rejects)."
        },
    )
    lease: Duration = field(
        default=Duration(60.0),
        metadata={"doc": "How long a node holds the job without renewing it; a dead node's job moves after this."},
    )


NAMES = frozenset(f.name for f in fields(EtlOptions)) - {"view"}


def query_values(raw: str) -> dict[str, str]:
    """The query of an ``etl:`` URI as option values, database URL intact (see the module doc)."""
    _, sep, query = raw.partition("?")
    if not sep:
        return {}
    pieces: list[list[str]] = []
    for piece in query.split("&"):
        name = piece.partition("=")[0]
        if pieces and pieces[-1][0] == "url" and "?" in pieces[-1][1] and not _option_like(name):
            pieces[-1][1] += "&" + piece  # a parameter of the database URL's own query
            continue
        pieces.append([name, piece.partition("=")[2]])
    values: dict[str, str] = {}
    for name, value in pieces:
        name = unquote(name)
        if name == "url":
            values[name] = value if ":" in value else unquote(value)
        elif name == "schedule":
            values[name] = unquote(value.replace("+", " "))
        else:
            values[name] = unquote(value)
    return values


def _option_like(name: str) -> bool:
    """An ``etl:`` option, or a misspelling of one (left to lint's "did you mean")."""
    name = name.replace("-", "_")
    return name in NAMES or bool(difflib.get_close_matches(name, NAMES, n=1, cutoff=0.8))


def url_problem(url: str, where: str) -> str | None:
    """Why ``url`` cannot name a database (checked without connecting: the engine is only built), or None."""
    try:
        staging_engine(url, where=where)
    except ConfigError as exc:
        return str(exc)
    return None


def problems(options: EtlOptions, given: set[str]) -> list[str]:
    """Lint problems of one ``from: etl:`` endpoint; ``given`` are the option names in the URI."""
    where = f"etl:{options.view}"
    if not options.view:
        return ["etl: needs a view, e.g. etl:V_HIS_PATIENTS?url=${HIS_DB_URL}&watermark=updated_at&key=patient_no"]
    out: list[str] = []
    for name in ("url", "watermark", "key"):
        if not getattr(options, name).strip():
            out.append(f"{where}: option '{name}' must not be empty")
    if options.url.strip():
        problem = url_problem(options.url, where)
        if problem:
            out.append(problem)
    if options.watermark and options.watermark == options.key:
        out.append(f"{where}: watermark and key must be different columns (both '{options.key}')")
    if options.batch < 1:
        out.append(f"{where}: batch must be at least 1 (got {options.batch})")
    if not 1 <= options.parallel <= max(options.batch, 1):
        out.append(f"{where}: parallel must be from 1 to batch ({options.batch}) (got {options.parallel})")
    if options.schedule is not None:
        problem = cron_problem(options.schedule)
        if problem:
            out.append(f"{where}: schedule: {problem}")
        if "poll" in given:
            out.append(f"{where}: option 'poll' has no effect with a schedule (the job runs at each tick)")
    if options.poll <= 0:
        out.append(f"{where}: poll must be more than 0 (got {options.poll:g}s)")
    if options.lease < 5:
        out.append(f"{where}: lease must be at least 5s (got {options.lease:g}s)")
    try:
        zoneinfo.ZoneInfo(options.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        out.append(
            f"{where}: timezone '{options.timezone}' is not known"
            + (did_you_mean(options.timezone, zoneinfo.available_timezones()) or " (e.g. UTC, Asia/Shanghai)")
        )
    duplicates = sorted({c for c in options.columns if options.columns.count(c) > 1})
    if duplicates:
        out.append(f"{where}: columns lists {', '.join(duplicates)} more than once")
    return out
