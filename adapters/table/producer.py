"""Writing messages as rows: insert or upsert, a JSON array in one transaction.

``to: table:patient_events?url=...&mode=upsert&constants=status:new`` feeds a
hospital's intermediate table (A1.13). The body is one JSON object or an array
of them; an array is written with one executemany in one transaction, so it
lands whole or not at all. Upsert uses the database's own statement where it
has one (``ON CONFLICT`` on PostgreSQL and SQLite, ``ON DUPLICATE KEY UPDATE``
on MySQL/MariaDB, which fires on any unique key there), else an update and,
for rows it did not find, an insert, in the same transaction.

Errors name the table and the column or constraint, never a value: driver
texts quote the offending values ("Duplicate entry 'PID123'"), so only
structured fields are taken from them. Bad data and a schema that does not fit
are :class:`PermanentDeliveryError` (dead letter); a database that is down is
a :class:`DeliveryError`, retried.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, bindparam, insert, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from adapters.table.database import dialect_of, reflect_table, staging_engine
from adapters.table.mapping import MappingError, body_rows, check_columns, table_rows
from adapters.table.options import TableOptions, constants, pairs
from esb.components import Producer
from esb.errors import ConfigError, DeliveryError, PermanentDeliveryError
from esb.exchange import Exchange

log = logging.getLogger("esb.adapters.table")

#: where drivers name the column or constraint in their message, and how to say it (no values are captured)
_NAMED = (
    (
        re.compile(r"(UNIQUE|NOT NULL|CHECK|FOREIGN KEY) constraint failed: ([\w.]+)"),
        "{0} constraint on '{1}'",
    ),  # SQLite
    (re.compile(r"Duplicate entry .* for key '([^']+)'"), "duplicate key '{0}'"),  # MySQL 1062
    (re.compile(r"Column '([^']+)' cannot be null"), "NULL in column '{0}'"),  # MySQL 1048
    (re.compile(r"Unknown column '([^']+)'"), "unknown column '{0}'"),  # MySQL 1054
    (re.compile(r"for column '([^']+)'"), "column '{0}'"),  # MySQL 1406 data too long, 1366 incorrect value
    (re.compile(r'column "([^"]+)"'), "column '{0}'"),  # PostgreSQL texts
    (re.compile(r'constraint "([^"]+)"'), "constraint '{0}'"),
    (re.compile(r"value too long for type ([\w ]+\(\d+\))"), "a value too long for {0}"),  # PostgreSQL 22001
    (re.compile(r"constraint \(([^)]+)\)"), "constraint '{0}'"),  # Oracle ORA-00001 unique constraint (S.NAME)
)


def describe_db_error(exc: DBAPIError, table: str) -> str:
    """What went wrong, naming the table and the column or constraint, without any value."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)  # psycopg: structured fields
    named: list[str] = []
    if diag is not None:
        named = [
            f"{what} '{value}'"
            for what, value in (("column", diag.column_name), ("constraint", diag.constraint_name))
            if value
        ]
    if not named:
        text = str(orig)
        for pattern, form in _NAMED:
            match = pattern.search(text)
            if match:
                named = [form.format(*match.groups())]
                break
    state = getattr(orig, "sqlstate", None) or getattr(diag, "sqlstate", None)
    code = f" ({state})" if state else ""
    kind = type(orig).__name__ if orig is not None else type(exc).__name__
    return f"table '{table}': {kind}{code}" + (f": {', '.join(named)}" if named else "")


class TableProducer(Producer):
    def __init__(self, options: TableOptions) -> None:
        self.options = options
        self.columns = pairs(options.columns, what="columns")
        self.fixed = constants(options)
        self._table: Table | None = None

    def _engine(self) -> Engine:
        return staging_engine(self.options.url, where=f"table '{self.options.table}'")

    def table(self) -> Table:
        if self._table is None:
            self._table = reflect_table(self._engine(), self.options.table)
        return self._table

    async def send(self, exchange: Exchange) -> Exchange | None:
        await asyncio.to_thread(self.write, exchange.body)
        return None

    def write(self, body: bytes) -> int:
        """Write the rows of ``body`` in one transaction; how many (blocking)."""
        name = self.options.table
        try:
            table = self.table()
            rows = table_rows(table, body_rows(body, table=name), self.columns, self.fixed)
            if not rows:
                return 0
            with self._engine().begin() as conn:
                if self.options.mode == "upsert":
                    self._upsert(conn, table, rows)
                else:
                    conn.execute(insert(table), rows)
            return len(rows)
        except MappingError as exc:
            raise PermanentDeliveryError(str(exc)) from None
        except ConfigError as exc:
            self._table = None  # a column may be added meanwhile: a retry from dead letter reflects again
            raise PermanentDeliveryError(str(exc)) from None
        except OperationalError as exc:
            log.debug("table %s: write failed", name, exc_info=True)
            raise DeliveryError(describe_db_error(exc, name)) from None
        except IntegrityError as exc:
            log.debug("table %s: write refused", name, exc_info=True)
            if self.options.mode == "upsert" and not _native_upsert(dialect_of(self._engine())):
                # update-then-insert lost a race with another writer of the same key: a retry finds the row
                raise DeliveryError(describe_db_error(exc, name)) from None
            raise PermanentDeliveryError(describe_db_error(exc, name)) from None
        except DBAPIError as exc:
            log.debug("table %s: write refused", name, exc_info=True)
            self._table = None  # the table may have changed: reflect it again next time
            raise PermanentDeliveryError(describe_db_error(exc, name)) from None
        except SQLAlchemyError as exc:
            raise PermanentDeliveryError(f"table '{name}': {type(exc).__name__}") from None

    def keys(self, table: Table) -> list[str]:
        keys = list(self.options.keys) or [c.name for c in table.primary_key.columns]
        if not keys:
            raise ConfigError(f"table '{table.fullname}' has no primary key: name the upsert columns with keys=COLUMN")
        check_columns(table, keys, what="upsert keys")
        return keys

    def _upsert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        keys = self.keys(table)
        missing = [key for key in keys if key not in rows[0]]
        if missing:
            raise MappingError(f"table '{table.fullname}': upsert needs a value for key column(s) {', '.join(missing)}")
        changing = [column for column in rows[0] if column not in keys]
        dialect = dialect_of(self._engine())
        if dialect in ("postgresql", "sqlite"):
            module: Any = postgresql if dialect == "postgresql" else sqlite
            statement = module.insert(table)
            if changing:
                statement = statement.on_conflict_do_update(
                    index_elements=keys, set_={c: statement.excluded[c] for c in changing}
                )
            else:
                statement = statement.on_conflict_do_nothing(index_elements=keys)
            conn.execute(statement, rows)
        elif dialect in ("mysql", "mariadb"):
            statement = mysql.insert(table)
            assignments = {c: statement.inserted[c] for c in (changing or keys[:1])}
            conn.execute(statement.on_duplicate_key_update(assignments), rows)
        else:
            self._update_then_insert(conn, table, keys, changing, rows)

    def _update_then_insert(
        self, conn: Connection, table: Table, keys: list[str], changing: list[str], rows: Sequence[dict[str, Any]]
    ) -> None:
        """The portable upsert (MS SQL, Oracle, DB2): row by row, since rowcounts of executemany are unreliable."""
        where = and_(*(table.c[k] == bindparam(f"b_key_{k}") for k in keys))
        statement = update(table).where(where).values({c: bindparam(f"b_set_{c}") for c in changing})
        missing = []
        for row in rows:
            params = {f"b_key_{k}": row[k] for k in keys} | {f"b_set_{c}": row[c] for c in changing}
            if not changing or conn.execute(statement, params).rowcount == 0:
                missing.append(row)
        if not changing:
            # nothing to update: insert only the rows whose key is not there yet
            present = set()
            for row in missing:
                found = conn.execute(table.select().where(where), {f"b_key_{k}": row[k] for k in keys}).first()
                if found is not None:
                    present.add(id(row))
            missing = [row for row in missing if id(row) not in present]
        if missing:
            conn.execute(insert(table), missing)

    async def close(self) -> None:
        """The engine is shared by every endpoint on the same URL: nothing to release here."""


def _native_upsert(dialect: str) -> bool:
    return dialect in ("postgresql", "sqlite", "mysql", "mariadb")
