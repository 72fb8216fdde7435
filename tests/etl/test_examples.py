"""routes/examples/ as shipped: a hospital feeding patients by a staging table and by its view (ETL),
and hearing about EMPI events on a STOMP topic (RabbitMQ from ESB_TEST_STOMP_URL)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from adapters.etl.foreground import ForegroundJob
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.settings import Settings, load_settings
from profiles.empi.listeners import load_listeners
from tests.adapters.stomp.support import Client, require_broker
from tests.etl import helpers as h
from tests.support import StartEngine, wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "routes" / "examples"
LISTENERS = EXAMPLES / "listeners.yaml.example"


def his_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("his_demo", EXAMPLES / "his_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_examples_lint_clean_and_the_listeners_file_loads() -> None:
    result = lint([EXAMPLES], EngineContext(load_settings()))
    assert result.errors == []
    assert sorted(r.route.id for r in result.routes) == ["his-patient-staging", "his-patients-etl"]
    assert {r.adapter.scheme for r in result.routes} == {"table", "etl"}
    (listener,) = load_listeners(LISTENERS)
    assert listener.uri.startswith("stomp://") and "/topic/empi.events" in listener.uri and listener.format == "json"


async def test_staging_rows_and_the_view_reach_the_empi_and_its_events_reach_the_topic(
    tmp_path: Path, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = require_broker()
    his_url = f"sqlite:///{tmp_path}/his.db"
    for name, value in {"HIS_DB_URL": his_url, "STOMP_HOST": broker.host, "STOMP_PORT": str(broker.port),
                        "STOMP_USER": broker.login, "STOMP_PASSWORD": broker.passcode,
                        "ESB_EMPI_LISTENERS": str(LISTENERS)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    his_demo().create(his_url, rows=60, staged=5)
    client = Client(broker)
    try:
        client.subscribe("/topic/empi.events", "hospital")
        engine = await start_engine(route_paths=(EXAMPLES,))
        db = engine.journal.engine

        # 1. the staging table: five new patients, each row marked done, each event on the topic
        staged = {f"H{100_000 + n:07d}" for n in range(1, 6)}
        await wait_for(lambda: staged <= set(h.empi_patients(db)), timeout=15, what="the staged patients")
        events = await asyncio.to_thread(collect, client, staged)
        assert {e["event"] for e in events.values()} == {"registered"}

        # 2. the view: the ETL backfill, run here as `esb etl run` does; its events go out through the engine
        settings: Settings = engine.settings
        async with ForegroundJob(settings, "his-patients-etl", [EXAMPLES]) as job:
            (report,) = await job.run()
        counts = report.counts
        assert (report.mode, counts.read, counts.loaded, counts.rejected) == ("backfill", 60, 59, 1)  # H0000050
        assert report.reasons == {
            "TransformError: patient row: column 'birth_date' is not a possible birth date "
            "(a date like 1980-05-06 or 19800506, not in the future, not before 1850)": 1
        }
        loaded = {f"H{n:07d}" for n in range(1, 61) if n != 50}
        events = await asyncio.to_thread(collect, client, loaded)
        assert events.keys() == loaded
    finally:
        client.close()


def collect(client: Client, wanted: set[str]) -> dict[str, dict[str, object]]:
    """Events from the topic until one for each patient in ``wanted`` came (others are ignored)."""
    found: dict[str, dict[str, object]] = {}
    while not wanted <= found.keys():
        event = json.loads(client.get(15.0).body)
        value = event["patient"]["value"]
        if value in wanted:
            found[value] = event
    return found
