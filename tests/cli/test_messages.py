"""``esb messages list|show|search|prune`` against a real journal (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from esb.journal import utcnow
from tests.cli.conftest import Cli
from tests.cli.journal_data import BODY_ADT, BODY_BINARY, Seeded, seed


@pytest.fixture
def seeded(db_url: str) -> Seeded:
    return seed(db_url)


@pytest.fixture
def cli(db_url: str, make_cli: Callable[[str], Cli]) -> Cli:
    return make_cli(db_url)


def test_list_prints_a_table_and_json_newest_first(cli: Cli, seeded: Seeded) -> None:
    result = cli("messages", "list")
    assert result.exit_code == 0, result.output
    header, rule, *lines = result.stdout.splitlines()
    assert header.split()[:3] == ["id", "route_id", "status"]
    assert [line.split()[0] for line in lines] == [seeded.newest, seeded.recent, seeded.old]
    assert "ValidationError: PID-3 missing" in lines[1]

    rows = cli.json("messages", "list")
    assert [(r["id"], r["route_id"], r["status"]) for r in rows] == [
        (seeded.newest, "orm", "processed"),
        (seeded.recent, "adt", "failed"),
        (seeded.old, "adt", "processed"),
    ]
    assert rows[2]["body_size"] == len(BODY_ADT) and "body" not in rows[2]
    assert rows[0]["received_at"].endswith("Z")


def test_list_filters_by_route_status_time_and_limit(cli: Cli, seeded: Seeded) -> None:
    def ids(*args: str) -> list[str]:
        return [r["id"] for r in cli.json("messages", "list", *args)]

    assert ids("--route", "adt") == [seeded.recent, seeded.old]
    assert ids("--status", "failed") == [seeded.recent]
    assert ids("--route", "orm", "--status", "failed") == []
    assert ids("--since", "1h") == [seeded.newest, seeded.recent]
    assert ids("--since", "5m") == [seeded.newest]
    assert ids("--until", "1h") == [seeded.old]
    assert ids("--since", "2d", "--until", "5m") == [seeded.recent, seeded.old]
    two_hours_ago = (utcnow() - dt.timedelta(hours=2)).isoformat(timespec="seconds")
    assert ids("--since", two_hours_ago) == [seeded.newest, seeded.recent]
    assert ids("--since", two_hours_ago + "+00:00") == [seeded.newest, seeded.recent]
    assert ids("--limit", "1") == [seeded.newest]
    empty = cli("messages", "list", "--route", "nope")
    assert empty.exit_code == 0 and empty.stdout.strip() == "(none)"


def test_bad_filter_values_are_usage_errors(cli: Cli, seeded: Seeded) -> None:
    result = cli("messages", "list", "--status", "done")
    assert result.exit_code == 2
    assert "'done' is not one of" in result.stderr
    result = cli("messages", "list", "--since", "yesterday")
    assert result.exit_code == 2
    assert "'yesterday' is neither an ISO time" in result.stderr
    assert cli("messages", "list", "--limit", "0").exit_code == 2


def test_show_prints_metadata_headers_and_every_attempt_but_no_body(cli: Cli, seeded: Seeded) -> None:
    result = cli("messages", "show", seeded.old)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"id: {seeded.old}" in out and "route_id: adt" in out and "status: processed" in out
    assert "  hl7-type: ADT^A01" in out
    assert f"  {seeded.delivery} -> seda:empi: delivered (2/3 attempts)" in out
    assert "#1 " in out and "on seed-node: error" in out and "DeliveryError: no route consumes seda:empi" in out
    assert "#2 " in out and "on seed-node: ok" in out
    assert "Smith" not in out and "body:" not in out

    shown = cli.json("messages", "show", seeded.old)
    assert shown["headers"] == {"hl7-type": "ADT^A01"} and "body" not in shown
    log = shown["deliveries"][0]["attempt_log"]
    assert [(a["attempt"], a["outcome"]) for a in log] == [(1, "error"), (2, "ok")]


def test_show_body_only_when_asked_and_raw_bytes(cli: Cli, seeded: Seeded) -> None:
    result = cli("messages", "show", seeded.old, "--body")
    assert result.exit_code == 0 and "body:\nMSH|" in result.stdout and "Smith^John" in result.stdout
    assert cli.json("messages", "show", seeded.old, "--body")["body"] == BODY_ADT.decode()
    # the message's charset header decides how the body is shown
    assert cli.json("messages", "show", seeded.recent, "--body")["body"] == BODY_BINARY.decode("latin-1")
    raw = cli("messages", "show", seeded.recent, "--raw")
    assert raw.exit_code == 0 and raw.stdout_bytes == BODY_BINARY


def test_show_unknown_or_bodiless_message_is_exit_1(cli: Cli, seeded: Seeded) -> None:
    result = cli("messages", "show", "0" * 32)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"esb: no message {'0' * 32}"
    result = cli("messages", "show", seeded.newest, "--raw")
    assert result.exit_code == 1
    assert f"message {seeded.newest} kept no body (route store mode 'metadata')" in result.stderr
    assert cli("messages", "show", seeded.newest).exit_code == 0


def test_search_matches_body_and_headers_and_exits_1_on_nothing(cli: Cli, seeded: Seeded) -> None:
    assert [r["id"] for r in cli.json("messages", "search", "Smith^John")] == [seeded.old]
    assert [r["id"] for r in cli.json("messages", "search", "adt^a01")] == [seeded.old]
    assert [r["id"] for r in cli.json("messages", "search", "|", "--route", "adt", "--limit", "5")] == [seeded.old]
    assert [r["id"] for r in cli.json("messages", "search", "Doe", "--since", "1h")] == [seeded.recent]
    table = cli("messages", "search", "Smith")
    assert table.exit_code == 0 and seeded.old in table.stdout and "Smith" not in table.stdout
    nothing = cli("messages", "search", "Smith", "--status", "failed")
    assert nothing.exit_code == 1 and nothing.stdout.strip() == "(none)"


def test_prune_removes_finished_messages_past_the_age(cli: Cli, seeded: Seeded) -> None:
    # 'newest' is in store mode metadata, not 'none': kept. 'recent' has a dead delivery: kept.
    assert cli.json("messages", "prune", "--older-than", "1h") == {"pruned": 1}
    assert [r["id"] for r in cli.json("messages", "list")] == [seeded.newest, seeded.recent]
    result = cli("messages", "prune", "--older-than", "0s")
    assert result.exit_code == 0 and result.stdout.strip() == "pruned 1 message(s)"
    assert [r["id"] for r in cli.json("messages", "list")] == [seeded.recent]
    assert cli("messages", "prune", "--older-than", "soon").exit_code == 2


def test_a_journal_without_tables_says_to_upgrade(make_cli: Callable[[str], Cli], tmp_path: Path) -> None:
    cli = make_cli(f"sqlite:///{tmp_path}/empty.db")
    result = cli("messages", "list")
    assert result.exit_code == 1
    assert "journal database sqlite:///" in result.stderr and "run 'esb db upgrade' first" in result.stderr
