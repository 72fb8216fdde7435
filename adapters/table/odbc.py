"""ODBC connection strings for staging tables, and the ``postgresql+pyodbc`` dialect SQLAlchemy lacks.

Hospitals often hand over a DSN or an ODBC connection string rather than a
driver URL. SQLAlchemy ships ``mssql+pyodbc`` and ``mysql+pyodbc`` but nothing
for PostgreSQL over ODBC, so :class:`PGDialect_pyodbc` combines its pyodbc
connector with the PostgreSQL dialect (registered as ``postgresql.pyodbc`` when
this module is imported). :func:`normalize_url` turns the engine's own
``odbc:///?odbc_connect=...&dialect=...`` form into such a SQLAlchemy URL.

Known pyodbc trap: ``fast_executemany`` sends binary parameters wrongly (HY090
"invalid string or buffer length"); :func:`fast_executemany_safe` tells when it
may be switched on for one statement's columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import Connection, types
from sqlalchemy.connectors.pyodbc import PyODBCConnector
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import interfaces

from esb.errors import ConfigError

#: ``dialect=`` values of an ``odbc:`` URL and the SQLAlchemy dialect each one means
ODBC_DIALECTS = {
    "postgresql": "postgresql+pyodbc",
    "mssql": "mssql+pyodbc",
    "mysql": "mysql+pyodbc",
    "mariadb": "mariadb+pyodbc",
}


class _CastString(types.String):
    render_bind_cast = True


def parse_pg_array(text: str) -> list[str | None]:
    """A one-dimensional PostgreSQL array literal (``{a,"b c",NULL}``) as a list of strings.

    psqlODBC returns arrays as this text, where psycopg returns lists; the
    dialect's reflection queries (``array_agg`` of column names) need lists.
    Hand-written because no installed library parses the literal without a
    PostgreSQL driver of its own.
    """
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("not a PostgreSQL array literal")
    out: list[str | None] = []
    body, index = text[1:-1], 0
    while index < len(body):
        if body[index] == '"':
            index += 1
            item: list[str] = []
            while body[index] != '"':
                if body[index] == "\\":
                    index += 1
                item.append(body[index])
                index += 1
            out.append("".join(item))
            index += 2  # closing quote and comma
            continue
        end = body.find(",", index)
        end = len(body) if end < 0 else end
        word = body[index:end]
        out.append(None if word.upper() == "NULL" else word)
        index = end + 1
    return out


class _TextArray(ARRAY):  # type: ignore[type-arg]
    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        convert = int if isinstance(self.item_type, types.Integer) else None

        def process(value: Any) -> Any:
            if not isinstance(value, str):
                return value
            items = parse_pg_array(value)
            return [convert(i) if convert and i is not None else i for i in items]

        return process


class PGDialect_pyodbc(PyODBCConnector, PGDialect):
    """PostgreSQL through pyodbc and psqlODBC (``DRIVER={PostgreSQL Unicode}``).

    The connector supplies the connection string handling and autocommit; the
    PostgreSQL dialect supplies SQL (``ON CONFLICT``, ``FOR UPDATE SKIP LOCKED``)
    and reflection, which runs plain catalog queries and so works over ODBC.
    """

    supports_statement_cache = True
    supports_native_decimal = True
    #: psqlODBC sends text parameters untyped and prepares on the server, which
    #: cannot type a bare ``?`` in e.g. ``json_build_object(?, ...)`` (reflection
    #: does that): cast string parameters, as the psycopg 3 dialect does
    bind_typing = interfaces.BindTyping.RENDER_CASTS
    colspecs = {**PGDialect.colspecs, types.String: _CastString, types.ARRAY: _TextArray}
    pyodbc_driver_name = "PostgreSQL Unicode"

    def _get_server_version_info(self, connection: Connection) -> tuple[int, ...]:
        # the connector asks ODBC's SQL_DBMS_VER, which psqlODBC pads ("15.00.0013"); ask the server
        return PGDialect._get_server_version_info(self, connection)  # type: ignore[no-untyped-call,no-any-return]

    def set_isolation_level(self, dbapi_connection: Any, level: Any) -> None:
        """Like the PostgreSQL dialect, but end the transaction with the driver's commit.

        The base dialect sends a literal ``COMMIT``, which psqlODBC does not see,
        so it would keep thinking a transaction is open.
        """
        if level == "AUTOCOMMIT":
            dbapi_connection.autocommit = True
            return
        dbapi_connection.autocommit = False
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {level}")
        cursor.close()
        dbapi_connection.commit()


registry.register("postgresql.pyodbc", "adapters.table.odbc", "PGDialect_pyodbc")


def normalize_url(url: str, *, where: str = "") -> str:
    """A SQLAlchemy URL for ``url``: ``odbc:///?odbc_connect=...&dialect=...`` is rewritten, the rest is kept.

    The connection string stays URL-encoded in ``odbc_connect``, as SQLAlchemy
    expects; only the ``dialect`` parameter is taken out to pick the dialect.
    """
    if not url.lower().startswith("odbc:"):
        return url
    prefix = f"{where}: " if where else ""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    dialect = next((value for key, value in query if key == "dialect"), "")
    if dialect not in ODBC_DIALECTS:
        raise ConfigError(
            f"{prefix}an odbc: URL needs dialect={'|'.join(ODBC_DIALECTS)} (got '{dialect}'), "
            "e.g. odbc:///?odbc_connect=DRIVER%3D%7BPostgreSQL+Unicode%7D%3B...&dialect=postgresql"
        )
    if not any(key == "odbc_connect" for key, _ in query) and not parts.netloc:
        raise ConfigError(f"{prefix}an odbc: URL needs odbc_connect=<URL-encoded connection string> or a DSN host")
    rest = url.split("?", 1)[1]
    kept = "&".join(item for item in rest.split("&") if not item.startswith("dialect="))
    return f"{ODBC_DIALECTS[dialect]}://{parts.netloc}{parts.path or '/'}?{kept}"


#: SQLAlchemy types whose values pyodbc's fast_executemany sends wrongly
_BINARY = (types.LargeBinary, types._Binary)


def fast_executemany_safe(column_types: Iterable[types.TypeEngine[Any]]) -> bool:
    """Whether pyodbc's ``fast_executemany`` may be used for these columns (no binary ones)."""
    return not any(isinstance(t, _BINARY) for t in column_types)
