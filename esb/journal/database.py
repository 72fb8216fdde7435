"""Engine creation per dialect, and schema upgrades through Alembic."""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: dialects where `SELECT ... FOR UPDATE SKIP LOCKED` claims rows without waiting
SKIP_LOCKED_DIALECTS = frozenset({"postgresql", "oracle", "mysql", "mariadb", "mssql"})
#: drivers whose connections expose their socket (``fileno()``): see _ping_if_stirred
SOCKET_DRIVERS = frozenset({"psycopg", "psycopg2"})


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    # hide_parameters: a driver error's text would otherwise carry the bound values
    # (patient IDs, message bodies) into whatever logs or answers it
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Writers queue on SQLite's lock instead of failing: 30 s like a pool wait.
        # This relies on pysqlite's own transaction handling, kept on purpose: it
        # opens the transaction at the first write, so reads before it (the claim
        # queries' SELECT) hold no snapshot, and the write then waits for the lock
        # rather than failing with "database is locked" on a stale snapshot, as a
        # plain BEGIN at the first read would; the claims' conditional UPDATE
        # decides who wins. tests/journal/test_concurrency.py holds this to account.
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs.update(pool_size=10, max_overflow=20)
        kwargs["pool_pre_ping"] = parsed.get_driver_name() not in SOCKET_DRIVERS
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif not kwargs["pool_pre_ping"]:
        event.listen(engine, "checkout", _ping_if_stirred)
    return engine


def _ping_if_stirred(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool checkout: ping a connection only when its socket has something to say.

    ``pool_pre_ping`` costs a ``SELECT 1`` round trip per transaction (a fifth
    of the journal's commit rate on PostgreSQL). An idle connection that the
    server closed (restart, ``pg_terminate_backend``, idle timeout) has an EOF
    or a FATAL message waiting on its socket, so only such a one is pinged,
    and one that fails the ping is replaced by the pool. Like the pre-ping,
    this cannot see a peer that vanished without a word; TCP keepalives can.
    """
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
        if not readable:
            return
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        dbapi_connection.rollback()
    except Exception as exc:
        raise DisconnectionError(f"connection found closed on checkout: {exc}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; NORMAL sync is durable across process
    # crashes (kill -9), which is what the journal promises on the embedded default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Step the schema back (``base`` drops the journal): for tests of the migrations and for rollbacks."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
