"""Reading a view in (watermark, key) order, the checkpoint's typed values, and rows as JSON."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json

import pytest
import sqlalchemy as sa

from adapters.etl.options import EtlOptions, query_values
from adapters.etl.source import Position, Source, bound_value, decode, encode, row_json
from esb.errors import ConfigError
from tests.etl.conftest import T0, HisDb, patient


def source_of(his: HisDb, **options: object) -> Source:
    values: dict[str, object] = {"view": his.view, "url": his.url, "watermark": "updated_at", "key": "patient_no"}
    values.update(options)
    return Source(EtlOptions(**values), "test")  # type: ignore[arg-type]


def read_all(source: Source, batch: int, lower: object = None) -> list[str]:
    """Every key in the order batches of ``batch`` rows return them, as a job walks the view."""
    keys: list[str] = []
    after: Position | None = None
    while rows := source.read(after, lower, batch):
        keys.extend(r["patient_no"] for r in rows)
        after = source.position(rows[-1])
    return keys


def test_batches_walk_the_view_in_watermark_then_key_order_across_ties(his: HisDb) -> None:
    # five rows share one watermark: a batch boundary inside the tie must neither skip nor repeat a row
    tied = T0 + dt.timedelta(hours=1)
    his.insert(*(patient(n, updated_at=tied) for n in (9, 3, 7, 1, 5)), patient(2), patient(20), patient(4))
    his.insert(patient(30, updated_at=None), patient(31, updated_at=T0 + dt.timedelta(days=1)))
    source = source_of(his)
    expected = ["P0002", "P0004", "P0020", "P0001", "P0003", "P0005", "P0007", "P0009", "P0031"]
    assert read_all(source, batch=2) == expected
    assert read_all(source, batch=100) == expected
    assert source.count(None, None) == 9 and source.unreadable() == 1  # P0030 has no watermark
    after = Position(tied, "P0005")
    assert source.count(after, None) == 3
    assert [r["patient_no"] for r in source.read(after, None, 10)] == ["P0007", "P0009", "P0031"]
    # since (inclusive) applies when there is no checkpoint; until is an exclusive upper bound
    assert read_all(source, 3, lower=tied) == ["P0001", "P0003", "P0005", "P0007", "P0009", "P0031"]
    bounded = source_of(his, until=(T0 + dt.timedelta(days=1)).isoformat())
    assert read_all(bounded, 4)[-1] == "P0009"
    picked = source_of(his, columns=("name",))
    assert set(picked.read(None, None, 1)[0]) == {"name", "updated_at", "patient_no"}
    assert [r["patient_no"] for r in source.by_keys(["P0031", "P0002", "P9999"])] == ["P0002", "P0031"]


def test_a_checkpoint_value_binds_back_as_the_type_the_column_returned(his: HisDb) -> None:
    his.insert(patient(1), patient(2))
    source = source_of(his)
    row = source.read(None, None, 1)[0]
    text, tag = encode(row["updated_at"])
    assert tag == "datetime" and decode(text, tag) == row["updated_at"]
    assert [r["patient_no"] for r in source.read(Position(decode(text, tag), "P0001"), None, 5)] == ["P0002"]


@pytest.mark.parametrize(
    "value",
    [dt.datetime(2024, 1, 2, 3, 4, 5, 6), dt.datetime(2024, 1, 2, tzinfo=dt.UTC), dt.date(2024, 1, 2), 42,
     decimal.Decimal("1.50"), 2.5, "H-1"],
)  # fmt: skip
def test_encode_decode_round_trip(value: object) -> None:
    assert decode(*encode(value)) == value
    assert type(decode(*encode(value))) is type(value)


def test_rows_become_json_with_iso_dates_exact_decimals_and_base64_bytes() -> None:
    row = {"d": dt.date(2024, 1, 2), "t": dt.datetime(2024, 1, 2, 3, 4), "n": decimal.Decimal("10.10"),
           "b": b"\x00\xff", "s": "张三", "none": None, "i": 7}  # fmt: skip
    body = json.loads(row_json(row))
    assert body == {"d": "2024-01-02", "t": "2024-01-02T03:04:00", "n": "10.10",
                    "b": base64.b64encode(b"\x00\xff").decode(), "s": "张三", "none": None, "i": 7}  # fmt: skip


def test_since_and_key_texts_take_the_column_type_or_say_what_fits() -> None:
    stamp = sa.Column("updated_at", sa.DateTime)
    now = dt.datetime(2024, 5, 10, 12, 0)
    assert bound_value("2024-01-01", stamp, what="since") == dt.datetime(2024, 1, 1)
    assert bound_value("30d", stamp, what="since", now=now) == dt.datetime(2024, 4, 10, 12, 0)
    assert bound_value("2024-01-01", sa.Column("d", sa.Date), what="since") == dt.date(2024, 1, 1)
    assert bound_value("17", sa.Column("seq", sa.BigInteger), what="since") == 17
    assert bound_value("P1", sa.Column("k", sa.String(8)), what="key") == "P1"
    with pytest.raises(ConfigError, match=r"since 'yesterday' does not fit column 'updated_at' \(datetime\)"):
        bound_value("yesterday", stamp, what="since")
    with pytest.raises(ConfigError, match="write e.g. 12345"):
        bound_value("x", sa.Column("seq", sa.Integer), what="since")


def test_a_missing_column_is_named_with_the_columns_there(sqlite_his: HisDb) -> None:
    with pytest.raises(ConfigError, match=r"watermark column 'UPDATED_AT' is not in .* \(did you mean 'updated_at'"):
        _ = source_of(sqlite_his, watermark="UPDATED_AT").table
    with pytest.raises(ConfigError, match=r"column 'nmae' is not in .*did you mean 'name'"):
        _ = source_of(sqlite_his, columns=("nmae",)).table


def test_the_database_url_keeps_its_plus_and_its_own_query() -> None:
    raw = (
        "etl:V?url=postgresql+psycopg://u:p%40ss@h:5432/db?options=-csearch_path%3Ds&sslmode=disable"
        "&watermark=updated_at&key=patient_no&schedule=0+2+*+*+*&since=2024-01-01T00:00:00+08:00&batc=5"
    )
    assert query_values(raw) == {
        "url": "postgresql+psycopg://u:p%40ss@h:5432/db?options=-csearch_path%3Ds&sslmode=disable",
        "watermark": "updated_at",
        "key": "patient_no",
        "schedule": "0 2 * * *",
        "since": "2024-01-01T00:00:00+08:00",
        "batc": "5",  # a misspelt option stays an option, for lint's "did you mean"
    }
