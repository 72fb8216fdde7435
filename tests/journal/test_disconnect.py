"""A pooled PostgreSQL connection that the server closed is replaced on checkout, not handed out."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from esb.journal import Journal
from tests.journal.helpers import accept, message_row


def backend_pid(journal: Journal) -> int:
    with journal.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def terminate(url: str, pid: int) -> None:
    """End one server process and wait until it is gone (its socket closed)."""
    admin = sa.create_engine(url)
    try:
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
            alive = sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            deadline = time.monotonic() + 10
            while conn.execute(alive, {"pid": pid}).scalar_one():
                assert time.monotonic() < deadline, f"backend {pid} still alive after pg_terminate_backend"
                conn.rollback()  # a transaction sees one snapshot of pg_stat_activity
                time.sleep(0.01)
    finally:
        admin.dispose()


@pytest.mark.pg
def test_a_connection_closed_by_the_server_is_replaced(pg_url: str) -> None:
    journal = Journal(pg_url, node_id="n1")
    try:
        journal.upgrade()
        before = backend_pid(journal)
        assert backend_pid(journal) == before  # the pool hands out its one idle connection again
        terminate(pg_url, before)
        message_id = accept(journal, claim=True)  # handed the closed one, this would fail
        row = message_row(journal, message_id)
        assert row is not None and row["status"] == "received"
        assert backend_pid(journal) != before
    finally:
        journal.close()
