"""``python -m bench mllp --quick`` runs a real engine and MLLP senders and prints its figures (shape only)."""

from __future__ import annotations

import json

from tests.bench.test_bench_smoke import run_bench


def test_mllp_quick_prints_ack_rate_and_latency() -> None:
    done = run_bench("mllp", "--quick", "--db", "sqlite")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    metrics = {line["metric"]: line for line in lines}
    assert {"ack_rate", "ack_latency_p99", "ack_rate_no_dedup", "ack_latency_no_dedup_p99"} <= set(metrics)
    assert all(line["bench"] == "mllp" and line["value"] > 0 for line in lines)
    assert metrics["ack_rate"]["unit"] == "messages/s" and metrics["ack_latency_p99"]["unit"] == "ms"
