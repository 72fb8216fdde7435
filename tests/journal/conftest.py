"""Journal fixtures: several Journal handles (nodes) on one database, and a clock to move by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest

from esb.journal import Journal
from tests.journal.helpers import Clock, MakeJournal


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_journal(db_url: str, clock: Clock) -> Iterator[MakeJournal]:
    """``make_journal(node_id, lease=60, clock=...)``: one more node on the test database (upgraded once)."""
    made: list[Journal] = []

    def make(node_id: str = "n1", *, lease: float = 60.0, clock: Callable[[], dt.datetime] = clock) -> Journal:
        journal = Journal(db_url, node_id=node_id, lease=lease, clock=clock)
        if not made:
            journal.upgrade()
        made.append(journal)
        return journal

    yield make
    for journal in made:
        journal.close()


@pytest.fixture
def journal(make_journal: MakeJournal) -> Journal:
    return make_journal("n1")
