"""``esb replay``: a running engine picks the replayed message (or delivery) up from the journal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from esb.exchange import Exchange
from esb.journal import admin
from esb.runtime.engine import Engine
from tests.cli.conftest import Cli
from tests.conftest import write_routes
from tests.routing.test_pipeline import wait_for

ROUTES = {
    "inbox": """
        route:
          id: inbox
          from: seda:inbox
          steps:
            - transform: {python: transforms.common:upper}
    """,
    "archive": """
        route:
          id: archive
          from: seda:archive
          steps:
            - log: archived
    """,
}


async def test_replay_reruns_the_route_and_to_delivers_once_more(
    tmp_path: Path, db_url: str, start_engine: Callable[..., Awaitable[Engine]], make_cli: Callable[[str], Cli]
) -> None:
    write_routes(tmp_path / "routes", ROUTES)
    engine = await start_engine(db_url=db_url)
    outcome = await engine.context.local_endpoints["seda:inbox"](Exchange(body=b"order 7"), True)
    assert outcome.status == "processed" and outcome.message_id
    original = outcome.message_id
    db = engine.journal.engine
    cli = make_cli(db_url)

    result = cli("replay", original)
    assert result.exit_code == 0, result.output
    new_id = result.stdout.strip()
    assert len(new_id) == 32 and new_id != original

    def replayed() -> bool:
        rows = {r["id"]: r for r in admin.list_messages(db, route="inbox")}
        return new_id in rows and rows[new_id]["status"] == "processed"

    await wait_for(replayed)
    assert admin.get_message(db, new_id)["replay_of"] == original
    assert admin.get_message(db, new_id)["body"] == b"order 7"

    again = cli.json("replay", original, "--to", "seda:archive")
    assert again["replay_of"] == original and again["to"] == "seda:archive"

    def delivered() -> bool:
        deliveries = admin.get_message(db, original)["deliveries"]
        return [(d["id"], d["status"]) for d in deliveries] == [(again["id"], "delivered")]

    await wait_for(delivered)
    await wait_for(lambda: len(admin.list_messages(db, route="archive", status="processed")) == 1)


async def test_replay_refuses_a_misspelt_destination_before_writing(
    tmp_path: Path, db_url: str, start_engine: Callable[..., Awaitable[Engine]], make_cli: Callable[[str], Cli]
) -> None:
    write_routes(tmp_path / "routes", ROUTES)
    engine = await start_engine(db_url=db_url)
    outcome = await engine.context.local_endpoints["seda:inbox"](Exchange(body=b"x"), True)
    assert outcome.message_id
    db = engine.journal.engine
    cli = make_cli(db_url)

    result = cli("replay", outcome.message_id, "--to", "sedaa:archive")
    assert result.exit_code == 2
    assert "--to 'sedaa:archive': no adapter for scheme 'sedaa' (did you mean 'seda'?)" in result.stderr
    result = cli("replay", outcome.message_id, "--to", "seda:archive?nmae=x")
    assert result.exit_code == 2 and "unknown option 'nmae' (did you mean 'name'?)" in result.stderr
    assert admin.get_message(db, outcome.message_id)["deliveries"] == []
    assert len(admin.list_messages(db)) == 1

    missing = cli("replay", "f" * 32)
    assert missing.exit_code == 1 and missing.stderr.strip() == f"esb: no message {'f' * 32}"
    assert cli("replay").exit_code == 2
