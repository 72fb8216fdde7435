"""``esb routes list|show``: routes as lint loads them, with counts from the journal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from esb.exchange import Exchange
from esb.journal import Journal
from tests.cli.conftest import Cli
from tests.conftest import write_routes

ROUTES = {
    "adt-in": """
        route:
          id: adt-in
          description: Patient feed from the HIS
          from: seda:adt-in
          store: metadata
          steps:
            - set-header: {name: kind, value: adt}
            - filter: {header: kind, equals: adt}
            - choice:
                - when: {header: urgent, matches: "^y"}
                  steps:
                    - to: {uri: seda:audit, retry: {max_attempts: 2, delay: 50ms}}
                - otherwise:
                    - log: {message: routine, level: debug}
            - transform: {python: transforms.common:upper}
          on_error:
            - retry: {max_attempts: 3, delay: 2s, max_delay: 1m}
            - reply: {code: AE}
            - to: dead-letter:adt-in
    """,
    "audit": """
        route:
          id: audit
          from: seda:audit
          steps:
            - log: audited
    """,
}


@pytest.fixture
def cli(tmp_path: Path, make_cli: Callable[[str], Cli]) -> Cli:
    write_routes(tmp_path / "routes", ROUTES)
    db_url = f"sqlite:///{tmp_path}/journal.db"
    journal = Journal(db_url)
    journal.upgrade()
    for status in ("processed", "processed", "failed"):
        message_id = journal.accept(Exchange(body=b"x"), route_id="adt-in", source="t", store_mode="full", claim=True)
        journal.complete(message_id, status=status)
    journal.close()
    return make_cli(db_url)


def test_list_shows_routes_with_message_counts(cli: Cli) -> None:
    result = cli("routes", "list")
    assert result.exit_code == 0, result.output
    header, _, first, second = result.stdout.splitlines()
    assert header.split() == ["id", "from", "steps", "store", "file", "received", "processed", "filtered", "failed"]
    assert first.split()[:4] == ["adt-in", "seda:adt-in", "4", "metadata"]
    assert first.split()[-4:] == ["0", "2", "0", "1"]
    assert second.split()[:2] == ["audit", "seda:audit"] and second.split()[-4:] == ["0", "0", "0", "0"]

    rows = cli.json("routes", "list")
    assert [(r["id"], r["steps"], r["messages"]) for r in rows] == [
        ("adt-in", 4, {"processed": 2, "failed": 1}),
        ("audit", 1, {}),
    ]
    assert rows[0]["file"].endswith("adt-in.yaml")


def test_list_without_a_readable_journal_leaves_counts_out(cli: Cli, tmp_path: Path) -> None:
    cli.db_url = f"sqlite:///{tmp_path}/never-upgraded.db"
    result = cli("routes", "list")
    assert result.exit_code == 0
    assert "message counts left out: journal not readable (no such table" in result.stderr
    assert result.stdout.splitlines()[0].split() == ["id", "from", "steps", "store", "file"]
    assert "messages" not in cli.json("routes", "list")[0]


def test_list_reports_broken_files_and_exits_1(cli: Cli) -> None:
    write_routes(cli.routes, {"broken": "route:\n  id: broken\n  from: seda:broken\n  steps:\n    - transfrom: {}\n"})
    result = cli("routes", "list")
    assert result.exit_code == 1
    assert "broken.yaml:5:7: step: unknown key" in result.stderr and "did you mean 'transform'" in result.stderr
    assert "adt-in" in result.stdout


def test_show_renders_steps_on_error_and_retry(cli: Cli) -> None:
    result = cli("routes", "show", "adt-in")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "description: Patient feed from the HIS" in lines
    assert "from: seda:adt-in" in lines
    assert any(line.startswith("file: ") and line.endswith("adt-in.yaml:2") for line in lines)
    assert "retry: 3 attempts, wait 2s x2 (at most 1m)" in lines
    steps = lines[lines.index("steps:") + 1 : lines.index("on_error:")]
    assert steps == [
        "  set-header kind = 'adt'  (line 7)",
        "  filter: keep if header kind == 'adt'  (line 8)",
        "  choice  (line 9)",
        "    when header urgent matches '^y':",
        "      to seda:audit (retry: 2 attempts, wait 50ms x2 (at most 5m))  (line 12)",
        "    otherwise:",
        "      log debug: routine  (line 14)",
        "  transform python transforms.common:upper  (line 15)",
    ]
    assert lines[lines.index("on_error:") + 1 :] == ["  reply code=AE  (line 18)", "  to dead-letter:adt-in  (line 19)"]

    shown = cli.json("routes", "show", "audit")
    assert shown["steps"] == ["log info: audited  (line 5)"] and shown["on_error"] == []
    assert shown["adapter"] == "seda" and shown["retry"] == "5 attempts, wait 1s x2 (at most 5m)"


def test_show_unknown_route_is_exit_1_with_a_suggestion(cli: Cli) -> None:
    result = cli("routes", "show", "adt-inn")
    assert result.exit_code == 1
    assert result.stderr.strip() == "esb: no route 'adt-inn' (did you mean 'adt-in'?)"
    assert cli("routes", "show").exit_code == 2
