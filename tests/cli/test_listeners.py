"""``esb listeners list|deliveries|resend`` with a running engine: an ADT feed into
service:empi, a file: listener that cannot write at first, then can, and a resend."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from esb.exchange import Exchange
from esb.journal import admin
from esb.journal.schema import deliveries
from tests.adapters.stomp.support import Client, delete_queues, require_broker, unique
from tests.cli.conftest import Cli
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for

ROUTES = {
    "adt": """
        route:
          id: adt
          from: seda:adt
          steps:
            - to: service:empi/feed
    """,
}
ADT = (
    "MSH|^~\\&|HIS1|HOSP|EMPI|REGION|20261129080000||ADT^A01^ADT_A01|c1|P|2.5|||||||UNICODE UTF-8\r"
    "EVN|A01|20261129080000\r"
    "PID|1||H100^^^HIS1&1.2.3.1&ISO^MR||张^三丰||19800506|M|||||13812345678||||||110101198005060015"
)


async def test_deliveries_of_a_failing_then_fixed_listener_and_a_resend(
    tmp_path: Path,
    db_url: str,  # before start_engine: the database outlives the engine at teardown
    start_engine: StartEngine,
    make_cli: Callable[[str], Cli],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the listener's directory lies under a regular file, so mkdir fails until the file goes
    blocker = tmp_path / "outbox"
    blocker.write_text("not a directory")
    events_dir = blocker / "events"
    uri = f"file:{events_dir}"
    (tmp_path / "listeners.yaml").write_text(
        "listeners:\n"
        f"  - {{name: archive, uri: '{uri}', format: json, events: [registered, updated, merged]}}\n"
        f"  - {{name: pacs-sync, uri: 'file:{tmp_path / 'pacs'}', format: json, events: [merged], enabled: false}}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "listeners.yaml"))
    monkeypatch.delenv("ESB_ADMIN_DENY", raising=False)
    write_routes(tmp_path / "routes", ROUTES)
    engine = await start_engine(db_url=db_url)
    db = engine.journal.engine
    cli = make_cli(db_url)

    outcome = await engine.context.local_endpoints["seda:adt"](Exchange(body=ADT.encode("utf-8")), True)
    assert outcome.status == "processed", outcome.error

    def first_attempt_failed() -> bool:
        rows = admin.deliveries_to(db, uri)
        return len(rows) == 1 and rows[0]["attempts"] == 1 and rows[0]["status"] == "pending"

    await wait_for(first_attempt_failed, what="a failed first attempt")
    (failing,) = cli.json("listeners", "deliveries", "archive")
    assert (failing["status"], failing["event"]) == ("pending", "registered") and failing["attempts"] >= 1
    assert "Not a directory" in failing["last_error"] and failing["delivered_at"] is None
    listed = {x["name"]: x for x in cli.json("listeners", "list")}
    assert listed["archive"]["uri"] == uri and listed["archive"]["pending"] == 1
    assert listed["archive"]["events"] == "registered,updated,merged"
    assert listed["pacs-sync"]["enabled"] is False and listed["pacs-sync"]["delivered"] == 0

    blocker.unlink()  # fixed: the next attempt (after the listener's 2 s backoff) can write

    def delivered(count: int) -> Callable[[], bool]:
        return lambda: [d["status"] for d in admin.deliveries_to(db, uri)] == ["delivered"] * count

    await wait_for(delivered(1), what="the retried delivery")
    (done,) = cli.json("listeners", "deliveries", "archive")
    assert (done["id"], done["status"]) == (failing["id"], "delivered") and done["attempts"] >= 2
    assert done["delivered_at"] is not None
    (event_file,) = events_dir.iterdir()
    assert json.loads(event_file.read_text(encoding="utf-8"))["event"] == "registered"

    # A1.16: one message again to one listener; the log then shows both rows
    resent = cli("listeners", "resend", done["id"])
    assert resent.exit_code == 0, resent.output
    new_id = resent.stdout.strip()
    assert new_id and new_id != done["id"]
    await wait_for(delivered(2), what="the resent delivery")
    log = cli.json("listeners", "deliveries", "archive")
    assert [(d["id"], d["resend_of"]) for d in log] == [(new_id, done["id"]), (done["id"], None)]
    assert {d["message_id"] for d in log} == {done["message_id"]} and log[0]["attempts"] == 1
    assert len(list(events_dir.iterdir())) == 2
    assert cli.json("listeners", "deliveries", "archive", "--status", "pending") == []
    assert len(cli.json("listeners", "deliveries", "archive", "--limit", "1")) == 1
    table = cli("listeners", "list")
    assert table.exit_code == 0 and table.stdout.splitlines()[0].split()[:3] == ["name", "uri", "format"]
    assert table.stdout.splitlines()[2].split()[-5:] == ["0", "0", "2", "0", "0"]
    log_table = cli("listeners", "deliveries", "archive")
    assert log_table.exit_code == 0 and new_id in log_table.stdout

    # refusals: unknown listener and delivery (exit 1), bad status (exit 2), no permission (exit 1)
    typo = cli("listeners", "deliveries", "archiv")
    assert typo.exit_code == 1 and "no listener 'archiv'" in typo.stderr and "did you mean 'archive'" in typo.stderr
    missing = cli("listeners", "resend", "nope")
    assert missing.exit_code == 1 and "no delivery nope" in missing.stderr
    assert cli("listeners", "deliveries", "archive", "--status", "lost").exit_code == 2
    monkeypatch.setenv("ESB_ADMIN_DENY", "listeners.resend")
    denied = cli("listeners", "resend", done["id"])
    assert denied.exit_code == 1 and "may not listeners.resend" in denied.stderr
    assert len(admin.deliveries_to(db, uri)) == 2
    monkeypatch.delenv("ESB_ADMIN_DENY")
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "no-such-file.yaml"))
    assert cli.json("listeners", "list") == []


async def test_a_listener_whose_uri_has_a_password_is_journalled_and_listed_without_it(
    tmp_path: Path,
    db_url: str,
    start_engine: StartEngine,
    make_cli: Callable[[str], Cli],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A STOMP listener on the real broker: the event arrives, the journal and the CLI show ``***``."""
    broker = require_broker()
    name = unique("listener")
    peer = Client(broker)
    try:
        peer.subscribe(f"/queue/{name}", "peer")
        monkeypatch.setenv("LISTENER_TEST_PASSCODE", broker.passcode)
        uri = f"stomp://{broker.login}:${{LISTENER_TEST_PASSCODE}}@{broker.host}:{broker.port}/queue/{name}"
        (tmp_path / "listeners.yaml").write_text(
            f"listeners:\n  - {{name: mq, uri: '{uri}', format: json, events: [registered]}}\n", encoding="utf-8"
        )
        monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "listeners.yaml"))
        monkeypatch.delenv("ESB_ADMIN_DENY", raising=False)
        write_routes(tmp_path / "routes", ROUTES)
        engine = await start_engine(db_url=db_url)
        outcome = await engine.context.local_endpoints["seda:adt"](Exchange(body=ADT.encode("utf-8")), True)
        assert outcome.status == "processed", outcome.error
        event = await asyncio.to_thread(peer.get)
        assert json.loads(event.body)["event"] == "registered"
        shown = f"stomp://{broker.login}:***@{broker.host}:{broker.port}/queue/{name}"
        db = engine.journal.engine
        await wait_for(lambda: [d["status"] for d in admin.deliveries_to(db, shown)] == ["delivered"])
        cli = make_cli(db_url)
        [listed] = cli.json("listeners", "list")
        assert (listed["uri"], listed["delivered"]) == (shown, 1)
        [logged] = cli.json("listeners", "deliveries", "mq")
        assert logged["status"] == "delivered"
        with db.connect() as conn:
            assert [row.destination for row in conn.execute(sa.select(deliveries.c.destination))] == [shown]
    finally:
        peer.close()
        delete_queues([name])
