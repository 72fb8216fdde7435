"""``esb deadletter list|retry|drop`` end to end with a running engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from esb.cli import deadletter
from esb.exchange import Exchange
from esb.journal import admin
from esb.runtime.engine import Engine
from tests.cli.conftest import Cli
from tests.conftest import write_routes
from tests.routing.test_pipeline import wait_for

LATE = """
    route:
      id: late
      from: seda:late
      enabled: {enabled}
      steps:
        - log: arrived late
"""
ROUTES = {
    # seda:late's route is disabled: each delivery to it dies on its one attempt
    "late": LATE.format(enabled="false"),
    "src": """
        route:
          id: src
          from: seda:src
          steps:
            - to: {uri: "seda:late", retry: {max_attempts: 1}}
    """,
    "strict": """
        route:
          id: strict
          from: seda:strict
          steps:
            - validate: {xpath: "/order[@id]"}
          on_error:
            - to: dead-letter:strict
    """,
}


async def test_list_retry_and_drop(
    tmp_path: Path,
    db_url: str,  # before start_engine: the database outlives the engines at teardown
    start_engine: Callable[..., Awaitable[Engine]],
    make_cli: Callable[[str], Cli],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    routes = write_routes(tmp_path / "routes", ROUTES)
    engine = await start_engine(db_url=db_url)
    for body in (b"<a/>", b"<b/>", b"<c/>"):
        assert (await engine.context.local_endpoints["seda:src"](Exchange(body=body), True)).status == "processed"
    assert (await engine.context.local_endpoints["seda:strict"](Exchange(body=b"<order/>"), True)).status == "failed"
    db = engine.journal.engine
    await wait_for(lambda: len(admin.list_dead(db)) == 4)
    cli = make_cli(db_url)

    table = cli("deadletter", "list")
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0].split()[:4] == ["id", "message_id", "route_id", "destination"]
    destinations = sorted(line.split()[3] for line in table.stdout.splitlines()[2:])
    assert destinations == ["dead-letter:strict", "seda:late", "seda:late", "seda:late"]
    late = cli.json("deadletter", "list", "--route", "src")
    assert len(late) == 3 and {d["destination"] for d in late} == {"seda:late"}
    assert "no route consumes seda:late" in late[0]["last_error"]
    parked = cli.json("deadletter", "list", "--destination", "dead-letter:strict")
    assert [d["route_id"] for d in parked] == ["strict"]
    assert len(cli.json("deadletter", "list", "--limit", "2")) == 2

    # usage errors (exit 2) and unknown ids (exit 1) change nothing
    for args in ((), (late[0]["id"], "--all"), ("--route", "src", "--all")):
        for verb in ("retry", "drop"):
            result = cli("deadletter", verb, *args)
            assert result.exit_code == 2, (verb, args, result.output)
            assert "IDS, --route" in result.stderr
    result = cli("deadletter", "retry", late[0]["id"], "nope")
    assert result.exit_code == 1 and "nope" in result.stderr and late[0]["id"] not in result.stderr
    assert len(admin.list_dead(db)) == 4

    # the destination appears (a node with the 'late' route enabled); retry now succeeds
    await engine.stop()
    write_routes(routes, {"late": LATE.format(enabled="true")})
    engine = await start_engine(db_url=db_url)
    db = engine.journal.engine
    first = late[0]
    result = cli("deadletter", "retry", first["id"])
    assert result.exit_code == 0 and result.stdout.strip() == "retried 1 delivery"

    def delivered() -> bool:
        (delivery,) = admin.get_message(db, first["message_id"])["deliveries"]
        return bool(delivery["status"] == "delivered")

    await wait_for(delivered)
    await wait_for(lambda: len(admin.list_messages(db, route="late", status="processed")) == 1)
    log = admin.get_message(db, first["message_id"])["deliveries"][0]["attempt_log"]
    assert [a["outcome"] for a in log] == ["error", "ok"]

    # drop the rest of src in batches of one; the rows stay, marked dropped
    monkeypatch.setattr(deadletter, "BATCH", 1)
    dropped = cli.json("deadletter", "drop", "--route", "src")
    assert sorted(dropped["dropped"]) == sorted(d["id"] for d in late[1:])
    assert admin.get_message(db, late[1]["message_id"])["deliveries"][0]["status"] == "dropped"
    assert [d["route_id"] for d in cli.json("deadletter", "list")] == ["strict"]
    gone = cli("deadletter", "drop", late[1]["id"])
    assert gone.exit_code == 1 and late[1]["id"] in gone.stderr

    # a parked dead-letter: message is run through its route again
    assert cli.json("deadletter", "retry", "--all") == {"retried": [parked[0]["id"]]}
    await wait_for(lambda: len(admin.list_messages(db, route="strict", status="failed")) == 2)
    rerun = [m for m in admin.list_messages(db, route="strict") if m["replay_of"]]
    assert [m["replay_of"] for m in rerun] == [parked[0]["message_id"]]
    await wait_for(lambda: len(admin.list_dead(db)) == 1)  # it failed again, and is parked again
    empty = cli("deadletter", "drop", "--all")
    assert empty.exit_code == 0 and empty.stdout.strip() == "dropped 1 delivery"
    assert cli("deadletter", "list").stdout.strip() == "(none)"
