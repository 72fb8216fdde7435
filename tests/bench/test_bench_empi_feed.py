"""``python -m bench empi-feed --quick``: bulk preload, a real engine with routes/hl7-in.yaml, MLLP senders."""

from __future__ import annotations

import json

from tests.bench.test_bench_smoke import run_bench


def test_empi_feed_quick_prints_preload_and_ack_figures() -> None:
    done = run_bench("empi-feed", "--quick", "--db", "sqlite")
    assert done.returncode == 0, done.stderr
    metrics = {line["metric"]: line for line in map(json.loads, done.stdout.splitlines())}
    assert metrics["preload_rate"]["unit"] == "patients/s" and metrics["preload_rate"]["value"] > 0
    assert metrics["ack_rate"]["unit"] == "messages/s" and metrics["ack_rate"]["value"] > 0
    assert metrics["ack_latency_p99"]["value"] >= metrics["ack_latency_p50"]["value"] > 0
    assert metrics["not_aa"]["value"] == 0 and metrics["messages"]["value"] == 100
