"""PS3.4 C.2.2.2 matching, run as SQL on both databases against a small table of values."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from profiles.dicom.attributes import norm_time, pn_key
from profiles.dicom.matching import Kind, condition, query_values

VALUES = ["ABC", "abc", "AB", "ABCD", "A_C", "A%C", "A[B]C", "", "X*Y", "DOE^JOHN", "DOE^JOHN=山田^太郎"]
TIMES = ["", "080000.000000", "083059.500000", "083100.000000", "120000.000000", "235959.999999"]


@pytest.fixture
def table(db_url: str) -> Iterator[tuple[sa.Engine, sa.Table]]:
    engine = sa.create_engine(db_url)
    metadata = sa.MetaData()
    values = sa.Table(
        "t_match",
        metadata,
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("text", sa.String(100), nullable=False),
        sa.Column("time", sa.String(16), nullable=False),
        sa.Column("number", sa.Integer),
    )
    metadata.create_all(engine)
    rows = [{"text": v, "time": TIMES[i % len(TIMES)], "number": i if i % 4 else None} for i, v in enumerate(VALUES)]
    with engine.begin() as conn:
        conn.execute(values.insert(), rows)
    yield engine, values
    metadata.drop_all(engine)
    engine.dispose()


def matches(table: tuple[sa.Engine, sa.Table], column: str, kind: Kind, value: object) -> list[str]:
    engine, values = table
    clause = condition(values.c[column], kind, query_values(value), engine.dialect.name)
    query = sa.select(values.c[column]).order_by(values.c.pk)
    if clause is not None:
        query = query.where(clause)
    with engine.connect() as conn:
        return [str(r[0]) for r in conn.execute(query)]


def test_text_matching(table: tuple[sa.Engine, sa.Table]) -> None:
    assert matches(table, "text", "text", "") == [str(v) for v in VALUES]  # universal
    assert matches(table, "text", "text", "*") == [str(v) for v in VALUES]
    assert matches(table, "text", "text", "ABC") == ["ABC"]  # case-sensitive
    assert matches(table, "text", "text", "AB*") == ["ABC", "AB", "ABCD"]
    assert matches(table, "text", "text", "A?C") == ["ABC", "A_C", "A%C"]
    assert matches(table, "text", "text", "A_C") == ["A_C"]
    assert matches(table, "text", "text", "A%*") == ["A%C"]
    assert matches(table, "text", "text", "A[B]*") == ["A[B]C"]
    assert matches(table, "text", "text", "*C") == ["ABC", "A_C", "A%C", "A[B]C"]
    assert matches(table, "text", "text", '""') == [""]
    assert matches(table, "text", "text", ["AB", "ABCD"]) == ["AB", "ABCD"]  # any of several values
    assert matches(table, "text", "text", ["AB", ""]) == [str(v) for v in VALUES]  # one universal value


def test_person_names(table: tuple[sa.Engine, sa.Table]) -> None:
    assert matches(table, "text", "pn", pn_key("doe^john")) == ["DOE^JOHN", "DOE^JOHN=山田^太郎"]
    assert matches(table, "text", "pn", "doe^john=山田^太郎") == ["DOE^JOHN=山田^太郎"]
    assert matches(table, "text", "pn", "DOE^J*") == ["DOE^JOHN", "DOE^JOHN=山田^太郎"]
    assert matches(table, "text", "pn", "DOE^JOHN^^") == ["DOE^JOHN", "DOE^JOHN=山田^太郎"]
    assert pn_key("Doe^John^^^=") == "DOE^JOHN"


def test_time_ranges(table: tuple[sa.Engine, sa.Table]) -> None:
    assert matches(table, "time", "time", "0830") == ["083059.500000", "083059.500000"]
    assert matches(table, "time", "time", "08-0830")[0] == "080000.000000"
    assert "083100.000000" not in matches(table, "time", "time", "-0830")
    assert set(matches(table, "time", "time", "12-")) == {"120000.000000", "235959.999999"}
    assert "" not in matches(table, "time", "time", "-23")
    assert matches(table, "time", "time", "noon") == []
    assert norm_time("1230") == "123000.000000" and norm_time("1230", upper=True) == "123059.999999"
    assert norm_time("12:30:15.25") == "123015.250000"


def test_numbers(table: tuple[sa.Engine, sa.Table]) -> None:
    assert matches(table, "number", "int", "2") == ["2"]
    assert matches(table, "number", "int", "x") == []
    assert matches(table, "number", "int", '""') == ["None", "None", "None"]


def test_query_values() -> None:
    assert query_values(None) == [] and query_values("") == [] and query_values(["", ""]) == []
    assert query_values(" ABC ") == ["ABC"] and query_values(["1.2", "1.3"]) == ["1.2", "1.3"]
    assert query_values("AB\x00") == ["AB"]
