"""``python -m bench xds-provide[-large] --quick``: ITI-41 through the shipped routes, figures in shape.

Speeds are not checked (a shared test machine says nothing about them); every
submission answering Success and the stored documents matching is checked by
the benchmark itself, which fails otherwise. The large-document run does check
one behaviour: the engine's memory does not grow with the document.
"""

from __future__ import annotations

import json
from typing import Any

from tests.bench.test_bench_smoke import run_bench


def figures(*args: str) -> dict[str, dict[str, Any]]:
    done = run_bench(*args, "--quick", "--db", "sqlite")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(line["bench"] == args[0] and line["db"] == "sqlite" for line in lines), lines
    for line in lines:
        assert isinstance(line["value"], int | float), line
        # a peak can equal the level before it; everything else is a count, a rate, a size or a time
        assert line["value"] >= 0 if line["metric"] == "rss_growth_mb" else line["value"] > 0, line
    return {line["metric"]: line for line in lines}


def test_xds_provide_quick_prints_rates_for_both_sizes() -> None:
    metrics = figures("xds-provide")
    for size in ("100kb", "10mb"):
        assert metrics[f"{size}_rate"]["unit"] == "submissions/s"
        assert metrics[f"{size}_throughput"]["unit"] == "MB/s"
        assert metrics[f"{size}_latency_p95"]["unit"] == "ms"
        assert metrics[f"{size}_latency_p50"]["value"] <= metrics[f"{size}_latency_p99"]["value"]
    assert metrics["100kb_submissions"]["value"] == 12 and metrics["10mb_submissions"]["value"] == 4


def test_xds_provide_large_quick_reports_engine_memory() -> None:
    metrics = figures("xds-provide-large")
    assert metrics["document_mb"]["value"] == 50
    assert {m["unit"] for k, m in metrics.items() if k.startswith("rss_")} == {"MB"}
    peak, before = metrics["rss_peak_mb"]["value"], metrics["rss_before_mb"]["value"]
    assert abs(metrics["rss_growth_mb"]["value"] - (peak - before)) < 0.2
    # streamed to disk: far less than the 50 MB document (in memory it would be 50 MB or more)
    assert metrics["rss_growth_mb"]["value"] < 25, metrics["rss_growth_mb"]
    assert metrics["upload_seconds"]["unit"] == "s" and metrics["upload_rate"]["unit"] == "MB/s"
