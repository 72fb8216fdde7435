"""``python -m bench stomp --quick``: a real engine relaying queue to queue on the test broker (shape only)."""

from __future__ import annotations

import json

from tests.adapters.stomp.support import Broker
from tests.bench.test_bench_smoke import run_bench


def test_stomp_bench_quick_prints_its_rates(broker: Broker) -> None:
    done = run_bench("stomp", "--quick", "--db", "sqlite")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert {line["metric"] for line in lines} == {"preload", "intake", "end_to_end"}
    for line in lines:
        assert line["bench"] == "stomp" and line["unit"] == "messages/s" and line["value"] > 0, line
