"""``table:`` options, how the database URL is cut out of the endpoint URI, and what lint checks.

One dataclass serves both sides, like ``file:``; :func:`problems` reports an
option given on the side where it means nothing.

The database URL is itself a URL with a query (``?sslmode=require&...``), and
``${ENV}`` interpolation puts it into the endpoint URI verbatim, so it cannot
be read with the ordinary query parsing (``+`` would become a space, its ``&``
parameters would look like table options). :func:`split_query` takes the
``url`` value raw, up to the next parameter that is a ``table:`` option.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal
from urllib.parse import unquote, unquote_plus

from esb.uri import Duration, did_you_mean

#: claim modes: row locks, status marks, or whichever the dialect allows
CLAIMS = ("auto", "lock", "mark")


@dataclass(frozen=True, kw_only=True)
class TableOptions:
    table: str = field(metadata={"doc": "Table or view: table:NAME or table:SCHEMA.NAME."})
    url: str = field(
        metadata={
            "doc": "SQLAlchemy database URL (postgresql+psycopg://, mysql+pymysql://, oracle+oracledb://, "
            "mssql+pyodbc://, sqlite:///, postgresql+pyodbc:///?odbc_connect=...) or "
            "odbc:///?odbc_connect=<URL-encoded connection string>&dialect=postgresql|mssql|mysql; "
            "usually ${ENV}. Taken verbatim up to the next table: option."
        }
    )
    columns: tuple[str, ...] = field(
        default=(),
        metadata={
            "doc": "COLUMN or COLUMN:FIELD, comma-separated: the columns to read (from:) or write (to:) and "
            "their JSON field names; empty: all columns under their own names."
        },
    )
    # -- consumer ('from:') --------------------------------------------------------
    key: tuple[str, ...] = field(
        default=(), metadata={"doc": "Key column(s) that name a row; empty: the primary key (views need it)."}
    )
    status: str = field(default="status", metadata={"doc": "Status column the consumer reads and marks."})
    pending: tuple[str, ...] = field(default=("new",), metadata={"doc": "Status value(s) of rows to take."})
    done: str = field(default="done", metadata={"doc": "Status of a row the engine took (and, wait=true, processed)."})
    failed: str = field(
        default="failed", metadata={"doc": "Status of a row that could not be mapped or whose route failed."}
    )
    error: str = field(
        default="", metadata={"doc": "Column for a failed row's reason (cut to the column's length); empty: none."}
    )
    processed_at: str = field(default="", metadata={"doc": "Column set to the time a row was marked; empty: none."})
    order: tuple[str, ...] = field(default=(), metadata={"doc": "Columns rows are taken in; empty: the key."})
    batch: int = field(default=100, metadata={"doc": "Most rows claimed at once (one transaction in lock mode)."})
    poll: Duration = field(default=Duration(1.0), metadata={"doc": "Pause between polls when no row is pending."})
    claim: Literal["auto", "lock", "mark"] = field(
        default="auto",
        metadata={
            "doc": "lock: SELECT ... FOR UPDATE SKIP LOCKED held for the batch (PostgreSQL, MySQL 8, "
            "MariaDB 10.6, Oracle); mark: a status update to 'claimed' with claimed_by/claimed_at "
            "(SQLite, MS SQL, DB2, any); auto: lock where the database has it."
        },
    )
    claimed: str = field(default="claimed", metadata={"doc": "Mark mode: status of a row a node has claimed."})
    claimed_by: str = field(default="claimed_by", metadata={"doc": "Mark mode: column for the claiming node."})
    claimed_at: str = field(default="claimed_at", metadata={"doc": "Mark mode: column for the claim time."})
    lease: Duration = field(
        default=Duration(120.0),
        metadata={
            "doc": "Mark mode: a claim not renewed for this long (its node died) is taken back by any node; "
            "live claims are renewed every lease/4."
        },
    )
    wait: bool = field(
        default=True,
        metadata={
            "doc": "Mark a row after its route completed (a failed route marks it failed with the error); "
            "false: done once journaled."
        },
    )
    # -- producer ('to:') ----------------------------------------------------------
    mode: Literal["insert", "upsert"] = field(
        default="insert",
        metadata={"doc": "insert, or upsert (insert or update on the keys: ON CONFLICT / ON DUPLICATE KEY)."},
    )
    keys: tuple[str, ...] = field(default=(), metadata={"doc": "Upsert: conflict columns; empty: the primary key."})
    constants: tuple[str, ...] = field(
        default=(), metadata={"doc": "COLUMN:VALUE, comma-separated: values written into every row (status:new)."}
    )


CONSUMER_ONLY = frozenset(
    {
        "key", "status", "pending", "done", "failed", "error", "processed_at", "order", "batch", "poll",
        "claim", "claimed", "claimed_by", "claimed_at", "lease", "wait",
    }
)  # fmt: skip
PRODUCER_ONLY = frozenset({"mode", "keys", "constants"})
OPTION_NAMES = frozenset(f.name for f in fields(TableOptions))
assert CONSUMER_ONLY | PRODUCER_ONLY | {"table", "url", "columns"} == OPTION_NAMES


def _option_name(key: str) -> str:
    return key.replace("-", "_")


def split_query(query: str) -> tuple[dict[str, str], list[str]]:
    """The endpoint's options, and the database URL's own parameters taken into ``url``.

    ``url`` is kept raw (its ``%XX`` and ``+`` are for SQLAlchemy); a parameter
    after it that is not a ``table:`` option belongs to the database URL. The
    second value lists those, so lint can point at a mistyped option there.
    """
    options: dict[str, str] = {}
    swallowed: list[str] = []
    url_parts: list[str] | None = None
    for item in query.split("&"):
        if not item:
            continue
        raw_key, _, raw_value = item.partition("=")
        key = unquote_plus(raw_key)
        if key == "url":
            url_parts = [raw_value]
        elif _option_name(key) not in OPTION_NAMES and url_parts is not None:
            url_parts.append(item)
            swallowed.append(key)
        else:
            options[key] = unquote_plus(raw_value)
    if url_parts is not None:
        options["url"] = _url_value(url_parts)
    return options, swallowed


def _url_value(parts: list[str]) -> str:
    """The database URL: percent-decoded once when written fully encoded, else verbatim."""
    first = parts[0]
    if "://" not in first and "%3A" in first.upper():
        first = unquote(first)  # url=postgresql%2Bpsycopg%3A%2F%2F...: the whole URL was encoded
    if len(parts) == 1:
        return first
    return first + ("&" if "?" in first else "?") + "&".join(parts[1:])


def pairs(items: tuple[str, ...], *, what: str) -> list[tuple[str, str]]:
    """``("a", "b:c")`` -> ``[("a", "a"), ("b", "c")]``; ``what`` names the option in errors."""
    out: list[tuple[str, str]] = []
    for item in items:
        left, sep, right = item.partition(":")
        left, right = left.strip(), right.strip()
        if not left or (sep and not right):
            raise ValueError(f"table: {what} entry '{item}' must be NAME or NAME:OTHER")
        out.append((left, right if sep else left))
    return out


def constants(options: TableOptions) -> dict[str, str]:
    """The producer's constant columns."""
    out: dict[str, str] = {}
    for item in options.constants:
        column, sep, value = item.partition(":")
        if not sep or not column.strip():
            raise ValueError(f"table: constants entry '{item}' must be COLUMN:VALUE (e.g. status:new)")
        out[column.strip()] = value
    return out


def problems(options: TableOptions, given: set[str], swallowed: list[str], *, consumer: bool) -> list[str]:
    """Lint problems of one endpoint; ``given`` are the option names in the URI."""
    out: list[str] = []
    if not options.table:
        out.append("table: needs a table name, e.g. table:his_patients?url=${HIS_DB_URL}")
    if not options.url:
        out.append("table: option 'url' must not be empty (a SQLAlchemy URL, e.g. ${HIS_DB_URL})")
    for key in swallowed:
        hint = did_you_mean(_option_name(key), OPTION_NAMES)
        if hint:
            out.append(f"table: '{key}' after url= is taken as a parameter of the database URL{hint}")
    for name in sorted(given & (PRODUCER_ONLY if consumer else CONSUMER_ONLY)):
        side, other = ("from", "to") if consumer else ("to", "from")
        out.append(f"table: option '{name}' has no effect in '{side}:' (it is for '{other}:' endpoints)")
    try:
        pairs(options.columns, what="columns")
        if not consumer:
            constants(options)
    except ValueError as exc:
        out.append(str(exc))
    if not consumer:
        return out
    if options.batch < 1:
        out.append(f"table: batch must be at least 1 (got {options.batch})")
    if options.poll <= 0:
        out.append(f"table: poll must be more than 0 (got {options.poll:g}s)")
    if not options.pending or any(not value for value in options.pending):
        out.append("table: pending must name at least one status value (e.g. new)")
    values = {"done": options.done, "failed": options.failed, "claimed": options.claimed}
    for name, value in values.items():
        if value in options.pending:
            out.append(f"table: {name} value '{value}' is also a pending value; rows would be taken again")
    if len(set(values.values())) < len(values):
        out.append("table: done, failed and claimed must be three different status values")
    if options.claim == "mark" and options.lease <= options.poll:
        out.append(f"table: lease ({options.lease:g}s) must be longer than poll ({options.poll:g}s)")
    return out
