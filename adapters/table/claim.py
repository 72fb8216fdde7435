"""Claiming staging rows so that several engine nodes never take the same one.

Two ways, chosen per database (``claim=auto``):

- ``lock``: ``SELECT ... FOR UPDATE SKIP LOCKED`` in a transaction held while
  the batch is handed over; the status updates commit with it. Another node's
  poll skips the locked rows. A node that dies loses its transaction, so its
  rows are pending again at once, with nothing to expire.
- ``mark``: an ``UPDATE`` of pending rows to ``claimed`` with a batch token in
  ``claimed_by`` and the time in ``claimed_at``, committed, then read back by
  the token: the conditional update decides who wins on any SQL database
  (SQLite, MS SQL, DB2). Live claims are renewed; one not renewed for
  ``lease`` (its node died) is put back to pending by any node.

Either way a row re-read after a crash was perhaps journaled already: the
consumer's dedup key makes the engine answer ``duplicate`` and the row is
simply marked done. Everything here is blocking; the consumer runs it in a thread.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    or_,
    select,
    types,
    update,
)
from sqlalchemy.exc import DataError

from adapters.table.database import dialect_of
from adapters.table.mapping import check_columns
from adapters.table.options import TableOptions
from esb.errors import ConfigError

#: what happens to a claimed row: done, failed (with the reason), or back to pending
Verdict = Literal["done", "failed", "pending"]

#: longest random part of a mark-mode token, after the node id
_TOKEN_RANDOM = 12


def lock_supported(engine: Engine) -> bool:
    """Whether ``FOR UPDATE SKIP LOCKED`` claims rows on this database (server version known after connecting)."""
    name = dialect_of(engine)
    version = engine.dialect.server_version_info or ()
    if name in ("postgresql", "oracle"):
        return True
    if name == "mariadb":
        return tuple(version[:2]) >= (10, 6)
    if name == "mysql":
        return tuple(version[:3]) >= (8, 0, 1)
    return False


#: what reading a bad value raises in SQLAlchemy's or a driver's conversion (a date column
#: holding "1990-13-45" in SQLite, undecodable text): the row is marked failed, not the batch
READ_ERRORS = (ValueError, TypeError, ArithmeticError, LookupError, UnicodeError, DataError)


@dataclass
class Row:
    key: tuple[Any, ...]
    values: dict[str, Any]
    #: why the row could not be read (it is marked failed with this)
    problem: str | None = None
    #: the pending value the row had when claimed (mark mode overwrites it with 'claimed')
    status: str | None = None


@dataclass
class Batch:
    rows: list[Row]
    #: lock mode: the connection whose open transaction holds the row locks
    conn: Connection | None = None
    #: mark mode: the token in claimed_by
    token: str | None = None
    #: mark mode: keys not yet marked (renewed until marked)
    open_keys: set[tuple[Any, ...]] = field(default_factory=set)


@dataclass
class Mark:
    key: tuple[Any, ...]
    verdict: Verdict
    error: str | None = None


class Claimer:
    """Claim, mark and release rows of one staging table (blocking calls)."""

    def __init__(
        self, engine: Engine, table: Table, options: TableOptions, read: Sequence[str], *, node_id: str
    ) -> None:
        self.engine = engine
        self.table = table
        self.options = options
        self.node_id = node_id
        self.key = list(options.key) or [c.name for c in table.primary_key.columns]
        if not self.key:
            raise ConfigError(
                f"table '{table.fullname}' has no primary key (a view?): name the key column(s) with key=COLUMN"
            )
        with engine.connect():
            pass  # the first connection tells the dialect the server version, which lock_supported needs
        if options.claim == "auto":
            self.mode: Literal["lock", "mark"] = "lock" if lock_supported(engine) else "mark"
        else:
            self.mode = options.claim
        if self.mode == "lock" and not lock_supported(engine):
            raise ConfigError(
                f"table '{table.fullname}': claim=lock needs SELECT ... FOR UPDATE SKIP LOCKED, which "
                f"{dialect_of(engine)} {'.'.join(map(str, engine.dialect.server_version_info or ()))} "
                "does not have; use claim=mark"
            )
        order = list(options.order) or self.key
        needed = [*self.key, options.status, *order]
        needed += [c for c in (options.error, options.processed_at) if c]
        if self.mode == "mark":
            needed += [options.claimed_by, options.claimed_at]
        check_columns(table, [*dict.fromkeys([*needed, *read])], what="named in the table: options")
        self.read = list(dict.fromkeys([*self.key, options.status, *read]))
        self.order = [table.c[name] for name in order]
        self.error_length = _length(table, options.error)
        self._pending = table.c[options.status].in_(list(options.pending))
        self._mark = self._mark_statement()

    # -- statements ------------------------------------------------------------------

    def _key_clause(self, prefix: str = "b_k") -> ColumnElement[bool]:
        return and_(*(self.table.c[name] == bindparam(f"{prefix}{i}") for i, name in enumerate(self.key)))

    def _key_params(self, key: tuple[Any, ...], prefix: str = "b_k") -> dict[str, Any]:
        return {f"{prefix}{i}": value for i, value in enumerate(key)}

    def _keys_in(self, keys: Sequence[tuple[Any, ...]]) -> ColumnElement[bool]:
        if len(self.key) == 1:
            return self.table.c[self.key[0]].in_([k[0] for k in keys])
        return or_(*(and_(*(self.table.c[n] == v for n, v in zip(self.key, k, strict=True))) for k in keys))

    def lock_statement(self) -> Select[Any]:
        """The lock-mode claim; Oracle refuses a row limit with FOR UPDATE (ORA-02014), so it fetches ``batch``."""
        query = select(*(self.table.c[name] for name in self.read)).where(self._pending).order_by(*self.order)
        if dialect_of(self.engine) != "oracle":
            query = query.limit(self.options.batch)
        return query.with_for_update(skip_locked=True)

    def candidates_statement(self) -> Select[Any]:
        return (
            select(*(self.table.c[name] for name in self.key), self.table.c[self.options.status])
            .where(self._pending)
            .order_by(*self.order)
            .limit(self.options.batch)
        )

    def _mark_statement(self) -> Update:
        values: dict[str, Any] = {self.options.status: bindparam("b_status")}
        if self.options.error:
            values[self.options.error] = bindparam("b_error")
        if self.options.processed_at:
            values[self.options.processed_at] = bindparam("b_at")
        statement = update(self.table).where(self._key_clause()).values(values)
        if self.mode == "mark":
            statement = statement.where(self.table.c[self.options.claimed_by] == bindparam("b_token"))
        return statement

    def _release_values(self, status: str | None = None) -> dict[str, Any]:
        options = self.options
        return {options.status: status or options.pending[0], options.claimed_by: None, options.claimed_at: None}

    # -- claiming ---------------------------------------------------------------------

    def claim(self) -> Batch:
        return self._claim_lock() if self.mode == "lock" else self._claim_mark()

    def _claim_lock(self) -> Batch:
        conn = self.engine.connect()
        try:
            conn.begin()
            rows = self._fetch(conn, self.lock_statement())
        except BaseException:
            conn.close()
            raise
        if not rows:
            conn.close()
            return Batch([])
        return Batch(rows, conn=conn)

    def new_token(self) -> str:
        random = uuid.uuid4().hex[:_TOKEN_RANDOM]
        length = _length(self.table, self.options.claimed_by)
        node = self.node_id if length is None else self.node_id[: max(0, length - _TOKEN_RANDOM - 1)]
        if length is not None and length < _TOKEN_RANDOM:
            raise ConfigError(
                f"table '{self.table.fullname}': column '{self.options.claimed_by}' is too short for a claim "
                f"token ({length}; needs {_TOKEN_RANDOM} or more, ideally 64)"
            )
        return f"{node}/{random}" if node else random

    def _claim_mark(self) -> Batch:
        token = self.new_token()
        with self.engine.begin() as conn:
            found = {tuple(r[:-1]): r[-1] for r in conn.execute(self.candidates_statement())}
            if not found:
                return Batch([])
            keys = list(found)
            conn.execute(
                update(self.table)
                .where(self._pending, self._keys_in(keys))
                .values(
                    {
                        self.options.status: self.options.claimed,
                        self.options.claimed_by: token,
                        self.options.claimed_at: self.now(self.options.claimed_at),
                    }
                )
            )
        mine = select(*(self.table.c[name] for name in self.read)).where(
            self.table.c[self.options.claimed_by] == token,
            self.table.c[self.options.status] == self.options.claimed,
        )
        with self.engine.connect() as conn:
            rows = self._fetch(conn, mine.order_by(*self.order))
        for row in rows:
            row.status = found.get(row.key, row.status)
        return Batch(rows, token=token, open_keys={r.key for r in rows})

    def _fetch(self, conn: Connection, query: Select[Any]) -> list[Row]:
        """The rows of ``query``; when a value cannot be read, row by row, so only the bad rows fail."""
        try:
            result = conn.execute(query)
            fetched = result.fetchmany(self.options.batch)
            result.close()
            return [self._row(r._mapping) for r in fetched]
        except READ_ERRORS:
            pass
        keys_only = query.with_only_columns(*(self.table.c[name] for name in self.key))
        result = conn.execute(keys_only)
        keys = [tuple(r) for r in result.fetchmany(self.options.batch)]
        result.close()
        return [self._read_one(conn, key) for key in keys]

    def _read_one(self, conn: Connection, key: tuple[Any, ...]) -> Row:
        params = self._key_params(key)
        try:
            found = conn.execute(select(*(self.table.c[n] for n in self.read)).where(self._key_clause()), params)
            return self._row(found.one()._mapping)
        except READ_ERRORS:
            pass
        for name in self.read:  # which column: the reason names it (never the value)
            try:
                conn.execute(select(self.table.c[name]).where(self._key_clause()), params).all()
            except READ_ERRORS as exc:
                return Row(key, {}, problem=f"column '{name}' cannot be read ({type(exc).__name__})")
        return Row(key, {}, problem="the row cannot be read")

    def _row(self, mapping: Any) -> Row:
        values = dict(mapping)
        return Row(tuple(values[name] for name in self.key), values, status=values.get(self.options.status))

    # -- marking ----------------------------------------------------------------------

    def finish(self, batch: Batch, marks: Sequence[Mark]) -> None:
        """Write the verdicts; in lock mode this commits the batch (rows without a mark stay pending)."""
        done = [m for m in marks if m.verdict != "pending"]
        back = [m for m in marks if m.verdict == "pending"]
        if batch.conn is not None:
            try:
                if done:
                    batch.conn.execute(self._mark, [self._mark_params(batch, m) for m in done])
                batch.conn.commit()
            finally:
                batch.conn.close()
                batch.conn = None
            return
        with self.engine.begin() as conn:
            if done:
                conn.execute(self._mark, [self._mark_params(batch, m) for m in done])
            if back:
                self._release(conn, batch, [m.key for m in back])
        batch.open_keys -= {m.key for m in marks}

    def _mark_params(self, batch: Batch, mark: Mark) -> dict[str, Any]:
        options = self.options
        params = self._key_params(mark.key)
        params["b_status"] = options.done if mark.verdict == "done" else options.failed
        if options.error:
            text = mark.error if mark.verdict == "failed" else None
            params["b_error"] = text[: self.error_length] if text and self.error_length else text
        if options.processed_at:
            params["b_at"] = self.now(options.processed_at)
        if batch.token is not None:
            params["b_token"] = batch.token
        return params

    def _release(self, conn: Connection, batch: Batch, keys: Sequence[tuple[Any, ...]]) -> None:
        """Give rows of ``batch`` back, each with the pending value it had (new, update, ...)."""
        had = {row.key: row.status for row in batch.rows}
        by_status: dict[str, list[tuple[Any, ...]]] = {}
        for key in keys:
            status = had.get(key)
            by_status.setdefault(status if status in self.options.pending else self.options.pending[0], []).append(key)
        for status, group in by_status.items():
            conn.execute(
                update(self.table)
                .where(self.table.c[self.options.claimed_by] == batch.token, self._keys_in(group))
                .values(self._release_values(status))
            )

    def abort(self, batch: Batch) -> None:
        """Give every unmarked row of the batch back (lock: roll back; mark: status back to pending)."""
        if batch.conn is not None:
            try:
                batch.conn.rollback()
            finally:
                batch.conn.close()
                batch.conn = None
            return
        if batch.token is not None and batch.open_keys:
            with self.engine.begin() as conn:
                self._release(conn, batch, sorted(batch.open_keys, key=repr))
            batch.open_keys.clear()

    def renew(self, batch: Batch) -> None:
        """Mark mode: move the claim time of the batch's unmarked rows forward, so no node takes them back."""
        if batch.token is None or not batch.open_keys:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(self.table)
                .where(
                    self.table.c[self.options.claimed_by] == batch.token,
                    self.table.c[self.options.status] == self.options.claimed,
                )
                .values({self.options.claimed_at: self.now(self.options.claimed_at)})
            )

    def take_back_stale(self) -> int:
        """Mark mode: put rows whose claim was not renewed for ``lease`` back to pending; how many."""
        if self.mode != "mark":
            return 0
        cutoff = self.now(self.options.claimed_at) - dt.timedelta(seconds=self.options.lease)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(self.table)
                .where(
                    self.table.c[self.options.status] == self.options.claimed,
                    self.table.c[self.options.claimed_at] < cutoff,
                )
                .values(self._release_values())
            )
            return int(result.rowcount or 0)

    def now(self, column: str) -> dt.datetime:
        """UTC now, time-zone aware only for a column that keeps the zone."""
        now = dt.datetime.now(dt.UTC)
        column_type = self.table.c[column].type
        if isinstance(column_type, types.DateTime) and column_type.timezone:
            return now
        return now.replace(tzinfo=None)


def _length(table: Table, column: str) -> int | None:
    if not column or column not in table.c:
        return None
    column_type = table.c[column].type
    return getattr(column_type, "length", None) if isinstance(column_type, types.String) else None
