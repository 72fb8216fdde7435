"""Staging-table ingest into the EMPI feed: rows/s from PostgreSQL and from MariaDB.

A hospital's intermediate table of ``n`` patient rows (seeded synthetic
registrations, as in the EMPI benchmarks) is filled on each source database;
a real :class:`Engine` polls it with ``from: table:`` (row locks, batches of
500, ``wait=true`` so each row is marked after the EMPI placed the patient),
maps each row to an ADT^A04 with ``transforms.etl.patients:to_adt`` and calls
``service:empi/feed``. The figure is rows/s from the engine's start until no
row is pending (marked done, or failed: the synthetic population has a few
impossible birth dates, which the mapping rejects, a figure of its own). A
pass without the EMPI step (``mapped_only``: claim, journal, map, mark) and
one without the engine (``adapter_only``: claim, JSON, mark, each row taken at
once) show where the time goes. The journal and the EMPI live on the runner's database
(``--db``); the staging tables on the sources, named by ``ESB_BENCH_PG_URL`` /
``ESB_TEST_PG_URL`` and ``ESB_BENCH_MYSQL_URL`` / ``ESB_TEST_MYSQL_URL``.

``python -m bench table-ingest --n 20000 --db sqlite``, or
``python -m bench.table --rows 20000 [--source postgresql|mariadb] [--db sqlite|postgresql]``
(``ESB_BENCH_TABLE_SOURCES=mariadb`` limits the sources under ``python -m bench`` too).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import os
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from bench.runner import DB_KINDS, REGISTRY, Figure, Run, pg_base_url, rate, register
from bench.runner import run as run_benchmarks

DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
SOURCES = ("postgresql", "mariadb")
FILL_BATCH = 5_000
#: persons per generated chunk (about 2.2 registrations each), to bound memory
CHUNK_PERSONS = 20_000
AUTHORITY = "H01&1.2.156.999.1&ISO"


def source_url(source: str) -> str:
    if source == "postgresql":
        return pg_base_url()
    return os.environ.get("ESB_BENCH_MYSQL_URL") or os.environ.get("ESB_TEST_MYSQL_URL") or DEFAULT_MYSQL_URL


def staging_table(name: str) -> sa.Table:
    """The intermediate table a HIS fills: its own columns plus the status the consumer marks."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("patient_no", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64)),
        sa.Column("sex", sa.String(4)),
        sa.Column("birth_date", sa.String(10)),
        sa.Column("id_card", sa.String(18)),
        sa.Column("phone", sa.String(20)),
        sa.Column("address", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("error", sa.String(400)),
        sa.Column("processed_at", sa.DateTime),
    )


def patient_rows(n: int) -> Iterator[dict[str, object]]:
    """``n`` rows from the seeded synthetic population, with unique patient numbers."""
    from profiles.empi.matching.synthetic import generate

    produced = 0
    for chunk in itertools.count():
        for record in generate(CHUNK_PERSONS, seed=500 + chunk).records():
            if produced == n:
                return
            produced += 1
            name = record.names[0] if record.names else None
            address = record.addresses[0] if record.addresses else None
            born = record.birth_date
            yield {
                "id": produced,
                "patient_no": f"P{produced:08d}",
                "name": f"{name.family}{name.given}" if name else None,
                "sex": record.sex or None,
                "birth_date": f"{born[:4]}-{born[4:6]}-{born[6:8]}" if len(born) == 8 else None,
                "id_card": record.national_id or None,
                "phone": record.phones[0] if record.phones else None,
                "address": f"{address.state}{address.city}{address.street}" if address else None,
                "status": "new",
            }


def fill(url: str, table: sa.Table, n: int) -> float:
    engine = sa.create_engine(url)
    try:
        table.create(engine)
        spent = 0.0  # inserting only: generating the population is not the database's time
        rows = patient_rows(n)
        while batch := list(itertools.islice(rows, FILL_BATCH)):
            started = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(table.insert(), batch)
            spent += time.perf_counter() - started
        return spent
    finally:
        engine.dispose()


def route(route_id: str, table: str, url: str, *, empi: bool) -> str:
    feed = "\n    - to: service:empi/feed" if empi else ""
    return (
        textwrap.dedent(
            f"""\
        route:
          id: {route_id}
          description: patients from the HIS intermediate table into the EMPI
          from: "table:{table}?url={url}&batch=500&poll=50ms&error=error&processed_at=processed_at"
          steps:
            - transform:
                python: transforms.etl.patients:to_adt
                params: {{authority: "{AUTHORITY}", id: patient_no, sending_application: HIS}}"""
        )
        + feed
        + "\n"
    )


def reset(url: str, table: sa.Table) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(table.update().values(status="new", error=None, processed_at=None))
    finally:
        engine.dispose()


def counts(url: str, table: sa.Table) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
            return {str(status): int(count) for status, count in conn.execute(query)}
    finally:
        engine.dispose()


async def ingest(run: Run, source: str, url: str, table: sa.Table, *, empi: bool) -> tuple[float, dict[str, int]]:
    from adapters.table.database import dispose_all
    from esb.runtime.engine import Engine
    from esb.settings import load_settings

    # another route id for the run without the EMPI: its rows are not duplicates of the first run's
    route_id = "his-patients" if empi else "his-patients-mapped"
    routes = run.db.scratch / f"routes-{source}-{route_id}"
    routes.mkdir()
    (routes / f"{route_id}.yaml").write_text(route(route_id, table.name, url, empi=empi), encoding="utf-8")
    os.environ["ESB_EMPI_LISTENERS"] = str(run.db.scratch / "no-listeners.yaml")
    settings = dataclasses.replace(
        load_settings(), data_dir=run.db.scratch / f"var-{source}", db_url=run.db.url, http_port=0,
        route_paths=(routes,), node_id="bench", shutdown_timeout=10.0,
    )  # fmt: skip
    engine = Engine(settings)
    started = time.perf_counter()
    await engine.start()
    try:
        deadline = started + max(600.0, run.n / 20)
        while True:
            await asyncio.sleep(0.2)
            seen = await asyncio.to_thread(counts, url, table)
            if seen.get("new", 0) == 0:
                break
            if time.perf_counter() > deadline:
                raise RuntimeError(f"table-ingest: rows still pending after {deadline - started:.0f}s: {seen}")
        seconds = time.perf_counter() - started
    finally:
        await engine.stop()
        dispose_all()
    return seconds, seen


async def adapter_only(url: str, table: sa.Table) -> float:
    """Claim, hand over to an engine that takes each row at once, mark: the adapter's own ceiling (no journal)."""
    from adapters.table.consumer import TableConsumer
    from adapters.table.database import dispose_all
    from adapters.table.options import TableOptions
    from esb.components import Outcome
    from esb.exchange import Exchange

    async def taken(exchange: Exchange, wait: bool) -> Outcome:
        return Outcome("bench", "processed", exchange)

    options = TableOptions(table=table.name, url=url, batch=500, error="error", processed_at="processed_at")
    consumer = TableConsumer(options, taken, "bench", "bench")
    started = time.perf_counter()
    try:
        while await consumer.poll():
            pass
        return time.perf_counter() - started
    finally:
        dispose_all()


@register("table-ingest", n=100_000, quick_n=300, summary="staging table (PostgreSQL, MariaDB) -> EMPI feed, rows/s")
def table_ingest_bench(run: Run) -> Iterator[Figure]:
    wanted = os.environ.get("ESB_BENCH_TABLE_SOURCES", ",".join(SOURCES)).split(",")
    for source in (s for s in SOURCES if s in wanted):
        url = source_url(source)
        table = staging_table(f"bench_his_{uuid.uuid4().hex[:10]}")
        try:
            print(f"  filling {run.n} rows on {source}", file=sys.stderr)
            filled = fill(url, table, run.n)
        except sa.exc.OperationalError as exc:
            yield Figure(f"{source}_ingest_rate", skipped=f"{source} unreachable: {type(exc).__name__}")
            continue
        try:
            yield Figure(f"{source}_fill_rate", rate(run.n, filled), "rows/s")
            yield Figure(f"{source}_adapter_only_rate", rate(run.n, asyncio.run(adapter_only(url, table))), "rows/s")
            reset(url, table)
            seconds, seen = asyncio.run(ingest(run, source, url, table, empi=False))
            yield Figure(f"{source}_mapped_only_rate", rate(run.n, seconds), "rows/s")
            reset(url, table)
            seconds, seen = asyncio.run(ingest(run, source, url, table, empi=True))
            yield Figure(f"{source}_ingest_rate", rate(run.n, seconds), "rows/s")
            yield Figure(f"{source}_ingest_seconds", round(seconds, 1), "s")
            yield Figure(f"{source}_failed_rows", seen.get("failed", 0), "rows")
        finally:
            engine = sa.create_engine(url)
            table.drop(engine, checkfirst=True)
            engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.table", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="patient rows per source (default 100000)")
    parser.add_argument("--db", choices=[*DB_KINDS, "both"], default="both", help="journal database (default: both)")
    parser.add_argument("--source", choices=[*SOURCES, "both"], default="both", help="staging database (default: both)")
    args = parser.parse_args(argv)
    if args.source != "both":
        os.environ["ESB_BENCH_TABLE_SOURCES"] = args.source
    kinds = DB_KINDS if args.db == "both" else (args.db,)
    # run as a script, this module registered itself as __main__; the runner imports bench.table again
    REGISTRY.pop("table-ingest", None)
    report = run_benchmarks(["table-ingest"], kinds, n=args.rows, quick=False)
    for failure in report.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
