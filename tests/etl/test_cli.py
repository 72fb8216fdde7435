"""``esb etl run|status|rejects|retry`` in-process (click's CliRunner) on a real journal and HIS view."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from adapters.etl.state import JobState
from esb.cli.common import main_group
from esb.journal import database
from tests.etl import helpers as h
from tests.etl.conftest import HisDb, patient

ROUTE = "his-patients"


class Cli:
    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db_url = db_url
        self.routes = tmp_path / "routes"
        self.env = {
            "ESB_DB_URL": db_url,
            "ESB_ROUTES": str(self.routes),
            "ESB_DATA_DIR": str(tmp_path / "var"),
            "ESB_NODE_ID": "cli-test",
            "ESB_CONFIG": None,
            "ESB_ADMIN_DENY": None,
        }

    def __call__(self, *args: str, **env: str) -> Result:
        runner = CliRunner(env={**self.env, **env})
        return runner.invoke(main_group, list(args), prog_name="esb", catch_exceptions=False)

    def json(self, *args: str) -> Any:
        result = self("--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    """A CLI on a SQLite journal, for tests whose journal database makes no difference."""
    return Cli(f"sqlite:///{tmp_path}/var/esb.db", tmp_path)


@pytest.fixture
def unmappable() -> Iterator[set[str]]:
    h.UNMAPPABLE.clear()
    yield h.UNMAPPABLE
    h.UNMAPPABLE.clear()


def lines(result: Result) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line and not line[0].isspace())


def test_run_reports_then_rejects_are_listed_retried_and_resolved(
    cli: Cli, sqlite_his: HisDb, unmappable: set[str]
) -> None:
    sqlite_his.insert(*(patient(n) for n in range(1, 6)), patient(6, birth_date="31/02/1990"))
    sqlite_his.insert(patient(7, updated_at=None))  # never readable: no watermark
    unmappable.add("P0002")
    route = h.patients_route(ROUTE, sqlite_his.uri(batch=2), before=("transform: {python: tests.etl.helpers:mapping}",))
    h.write_route(cli.routes, ROUTE, route)

    result = cli("etl", "run", ROUTE)
    assert result.exit_code == 0, result.output
    report = lines(result)
    assert (report["runs"], report["status"], report["read"], report["loaded"]) == ("backfill", "done", "6", "4")
    assert (report["rejected"], report["skipped"], report["unreadable"]) == ("2", "0", "1")
    assert report["elapsed"].endswith("s") and float(report["rows_per_second"]) > 0
    reasons = result.stdout.split("top reasons:\n", 1)[1].splitlines()
    assert len(reasons) == 2 and all(line.split()[0] == "1" for line in reasons)
    assert any("TransformError: no mapping for ward code" in line for line in reasons)
    assert any("column 'birth_date' is not a possible birth date" in line for line in reasons)

    (status,) = cli.json("etl", "status")
    assert (status["route"], status["last_key"], status["last_run"], status["run_status"]) == (
        ROUTE, "P0006", "backfill", "done")  # fmt: skip
    assert (status["read"], status["loaded"], status["rejected"], status["open_rejects"]) == (6, 4, 2, 2)
    one = cli("etl", "status", ROUTE)
    assert one.exit_code == 0 and "open_rejects: 2" in one.stdout

    table = cli("etl", "rejects", ROUTE)
    assert table.exit_code == 0 and "P0002" in table.stdout and "P0006" in table.stdout
    listed = json.loads(cli("etl", "rejects", ROUTE, "--format", "json").stdout)
    assert {r["row_key"]: r["row"]["birth_date"] for r in listed} == {"P0002": "1950-03-16", "P0006": "31/02/1990"}
    assert {r["status"] for r in listed} == {"open"}

    unmappable.clear()  # the mapping is fixed; the bad birth date stays bad
    usage = cli("etl", "retry", ROUTE)
    assert usage.exit_code == 2 and "give --key KEY or --all" in usage.output
    assert cli("etl", "retry", ROUTE, "--key", "P9999").exit_code == 1
    marked = cli.json("etl", "retry", ROUTE, "--all")
    assert marked["marked"] == 2

    again = cli("etl", "run", ROUTE)
    assert again.exit_code == 0, again.output
    report = lines(again)
    assert (report["runs"], report["read"], report["loaded"], report["rejected"]) == (
        "retry, incremental",
        "2",
        "1",
        "1",
    )
    left = json.loads(cli("etl", "rejects", ROUTE, "--format", "json").stdout)
    assert [(r["row_key"], r["status"], r["attempts"]) for r in left] == [("P0006", "open", 2)]
    journal = database.make_engine(cli.db_url)
    try:
        assert "P0002" in h.empi_patients(journal)
    finally:
        journal.dispose()


def test_a_rerun_from_the_start_loads_nothing_twice(sqlite_cli: Cli, sqlite_his: HisDb) -> None:
    cli = sqlite_cli
    sqlite_his.insert(*(patient(n) for n in range(1, 5)))
    h.write_route(cli.routes, ROUTE, h.patients_route(ROUTE, sqlite_his.uri()))
    first = cli.json("etl", "run", ROUTE)
    assert (first["read"], first["loaded"], first["reasons"]) == (4, 4, [])
    nothing = cli.json("etl", "run", ROUTE)
    assert (nothing["runs"], nothing["read"]) == ("incremental", 0)
    again = cli.json("etl", "run", ROUTE, "--reset")
    assert (again["runs"], again["read"], again["loaded"], again["skipped"]) == ("backfill", 4, 0, 4)
    since = cli.json("etl", "run", ROUTE, "--since", "2024-03-01T08:03:00")
    assert (since["read"], since["skipped"]) == (2, 2)
    wrong = cli("etl", "run", ROUTE, "--since", "yesterday")
    assert wrong.exit_code == 2 and "--since 'yesterday' does not fit column 'updated_at'" in wrong.output


def test_route_problems_name_the_file_and_line(sqlite_cli: Cli, sqlite_his: HisDb) -> None:
    cli = sqlite_cli
    uri = sqlite_his.uri().replace("watermark=", "watermak=")
    path = h.write_route(cli.routes, ROUTE, h.patients_route(ROUTE, uri))
    result = cli("etl", "run", ROUTE)
    assert result.exit_code == 2
    assert f"{path}:3:" in result.output and "unknown option 'watermak' (did you mean 'watermark'?)" in result.output
    missing = cli("etl", "run", "his-patient")
    assert missing.exit_code == 2 and "no route 'his-patient'" in missing.output and "did you mean 'his-patients'" in (
        missing.output)  # fmt: skip
    h.write_route(cli.routes, "other", "route:\n  id: other\n  from: seda:other\n  steps:\n    - log: x\n")
    not_etl = cli("etl", "run", "other")
    assert not_etl.exit_code == 2 and "reads from 'seda:', not 'etl:'" in not_etl.output


def test_a_job_held_elsewhere_is_refused_and_permissions_are_checked(cli: Cli, sqlite_his: HisDb) -> None:
    sqlite_his.insert(patient(1))
    h.write_route(cli.routes, ROUTE, h.patients_route(ROUTE, sqlite_his.uri()))
    engine = database.make_engine(cli.db_url)
    try:
        database.upgrade(engine)
        assert JobState(engine, ROUTE, "engine-node-7", 60).acquire()[0]
    finally:
        engine.dispose()
    busy = cli("etl", "run", ROUTE)
    assert busy.exit_code == 1 and "the job is running on 'engine-node-7'" in busy.output
    denied = cli("etl", "rejects", ROUTE, ESB_ADMIN_DENY="etl.read")
    assert denied.exit_code == 1 and "may not etl.read" in denied.output
