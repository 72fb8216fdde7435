"""The worklist table under two writers (two engine nodes taking the same order at once)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from esb.journal import database
from profiles.worklist.orders import Order, parse_order
from profiles.worklist.schema import items
from profiles.worklist.store import Worklist
from tests.worklist.samples import orm


@pytest.fixture
def worklist(db_url: str) -> Iterator[Worklist]:
    engine = database.make_engine(db_url)
    database.upgrade(engine)
    yield Worklist(engine)
    engine.dispose()


def apply_at_once(worklist: Worklist, order: Order, failures: list[BaseException]) -> None:
    """Two threads apply ``order`` together (released by one barrier); their exceptions go to ``failures``."""
    start = threading.Barrier(2)

    def apply() -> None:
        start.wait()
        try:
            worklist.apply(order)
        except BaseException as exc:  # collected for the test's assertion
            failures.append(exc)

    writers = [threading.Thread(target=apply) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)


def test_the_same_new_order_applied_at_once_by_two_writers_makes_one_item(worklist: Worklist) -> None:
    failures: list[BaseException] = []
    for round_no in range(10):
        apply_at_once(worklist, parse_order(orm(f"c{round_no}", accession=f"R{round_no}").encode()), failures)
    assert failures == []
    with worklist.engine.connect() as conn:
        per_step = conn.execute(sa.select(items.c.accession_number, sa.func.count()).group_by(items.c.accession_number))
        assert sorted(per_step.all()) == [(f"R{n}", 1) for n in range(10)]
