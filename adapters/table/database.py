"""Engines and reflected tables for databases the engine does not own (staging tables, ETL views).

Public API, shared with the ``etl:`` adapter (keep it stable):

- :func:`staging_engine` one SQLAlchemy engine per URL, cached for the process,
  with ``pool_pre_ping`` (a hospital database restarts or drops idle
  connections without telling us) and ODBC URLs (:mod:`adapters.table.odbc`);
- :func:`reflect_table` a table or view by name, ``schema.table`` allowed;
- :func:`safe_url` a URL fit for logs and error texts (no password).

Unlike the journal's engine (:mod:`esb.journal.database`), nothing here sets
pragmas or schema: the database belongs to the hospital.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import quote_plus

from sqlalchemy import Engine, MetaData, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, NoSuchTableError

from adapters.table import odbc
from esb.errors import ConfigError

__all__ = ["ODBC", "dialect_of", "reflect_table", "safe_url", "split_name", "staging_engine"]


class ODBC:
    """ODBC connection strings: ``odbc:///?odbc_connect=<URL-encoded string>&dialect=postgresql|mssql|mysql``.

    ``mssql+pyodbc://``, ``mysql+pyodbc://`` and ``postgresql+pyodbc://`` URLs
    are taken as they are (the last one through :mod:`adapters.table.odbc`).
    """

    DIALECTS = odbc.ODBC_DIALECTS

    @staticmethod
    def url(connection_string: str, dialect: str) -> str:
        """The ``odbc:`` URL for a raw ODBC connection string."""
        return f"odbc:///?odbc_connect={quote_plus(connection_string)}&dialect={dialect}"

    @staticmethod
    def normalize(url: str, *, where: str = "") -> str:
        """The SQLAlchemy URL behind an ``odbc:`` URL (others unchanged)."""
        return odbc.normalize_url(url, where=where)


_engines: dict[str, Engine] = {}
_lock = threading.Lock()

#: backends whose default isolation (REPEATABLE READ) would make a claim see a stale snapshot
_READ_COMMITTED = frozenset({"mysql", "mariadb"})


#: a password inside an ODBC connection string (``PWD=x;`` or ``PWD={x;y}``)
_ODBC_PASSWORD = re.compile(r"(?i)\b(pwd|password)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)")


def safe_url(url: str) -> str:
    """The URL without its password (also one in ``odbc_connect``), for messages.

    An unparsable URL is reduced to its scheme.
    """
    try:
        parsed = make_url(odbc.normalize_url(url))
    except (ArgumentError, ConfigError, ValueError):
        return url.split(":", 1)[0] + ":..."
    connect = parsed.query.get("odbc_connect")
    if isinstance(connect, str):
        parsed = parsed.update_query_dict({"odbc_connect": _ODBC_PASSWORD.sub(r"\1=***", connect)})
    return parsed.render_as_string(hide_password=True)


def staging_engine(url: str, *, where: str = "") -> Engine:
    """The engine for ``url``, created on first use and shared by every endpoint naming that URL.

    ``where`` prefixes error texts (e.g. ``"route 'his-patients': table:"``).
    Raises :class:`ConfigError` for a URL SQLAlchemy cannot use (unknown
    dialect, driver not installed), naming the URL without its password.
    """
    prefix = f"{where}: " if where else ""
    sa_url = odbc.normalize_url(url, where=where)
    with _lock:
        engine = _engines.get(sa_url)
        if engine is not None:
            return engine
        try:
            parsed = make_url(sa_url)
        except ArgumentError as exc:
            raise ConfigError(f"{prefix}'{safe_url(url)}' is not a database URL ({exc})") from None
        kwargs: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            # writers queue on SQLite's lock for 30 s instead of failing at once
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_size=5, max_overflow=10, pool_recycle=3600)
        if backend in _READ_COMMITTED:
            kwargs["isolation_level"] = "READ COMMITTED"
        try:
            engine = create_engine(parsed, **kwargs)
        except (NoSuchModuleError, ImportError, ArgumentError) as exc:
            raise ConfigError(
                f"{prefix}cannot use database URL '{safe_url(url)}': {type(exc).__name__}: {exc}"
            ) from None
        if parsed.get_driver_name() == "pyodbc":
            event.listen(engine, "before_cursor_execute", _fast_executemany_unless_binary)
        _engines[sa_url] = engine
        return engine


def _fast_executemany_unless_binary(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    """Batch through pyodbc's parameter arrays, except for statements with a binary column (HY090 there).

    pyodbc's ``fast_executemany`` binds a binary parameter with a zero buffer
    length whenever the first value is empty or NULL, which the driver manager
    refuses ("Invalid string or buffer length", HY090); statements without
    binary columns go through it fine and many times faster.
    """
    if not executemany:
        return
    compiled = getattr(context, "compiled", None)
    binds = getattr(compiled, "binds", {}).values() if compiled is not None else ()
    cursor.fast_executemany = bool(binds) and odbc.fast_executemany_safe(b.type for b in binds)


def dispose_all() -> None:
    """Close every pooled connection (engine shutdown, tests)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


def dialect_of(engine: Engine) -> str:
    """The backend name: postgresql, mysql, mariadb, sqlite, oracle, mssql, ibm_db_sa, ..."""
    name = engine.dialect.name
    if name == "mysql" and getattr(engine.dialect, "is_mariadb", False):
        return "mariadb"
    return name


def split_name(name: str, schema: str | None = None) -> tuple[str | None, str]:
    """``"s.t"`` -> ``("s", "t")``; an explicit ``schema`` wins over a dotted name's."""
    if schema is None and "." in name:
        schema, _, name = name.rpartition(".")
    return schema or None, name


def reflect_table(engine: Engine, name: str, *, schema: str | None = None) -> Table:
    """The table or view ``name`` with its columns as the database declares them.

    Raises :class:`ConfigError` naming the table (and the URL, without its
    password) when it does not exist or cannot be read.
    """
    schema, table = split_name(name, schema)
    shown = f"{schema}.{table}" if schema else table
    try:
        return Table(table, MetaData(), schema=schema, autoload_with=engine)
    except NoSuchTableError:
        raise ConfigError(
            f"table '{shown}' does not exist in {safe_url(engine.url.render_as_string(hide_password=False))}"
            " (or this user may not read it)"
        ) from None
