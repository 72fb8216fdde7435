"""``python -m bench worklist-find --quick``: an engine answering Modality Worklist C-FINDs, figures in shape.

Speeds are not checked; every query must have been answered with success (the
benchmark raises otherwise) and every figure must be there, positive, in its unit.
"""

from __future__ import annotations

import json

from tests.bench.test_bench_smoke import run_bench

KINDS = ("station_day", "patient_id", "accession", "name_prefix")


def test_worklist_benchmark_quick_prints_every_figure() -> None:
    done = run_bench("worklist-find", "--quick", "--db", "sqlite")
    assert done.returncode == 0, done.stderr
    figures = {line["metric"]: line for line in map(json.loads, done.stdout.splitlines())}
    expected = {"worklist_fill_rate"} | {f"find_{k}_{p}" for k in KINDS for p in ("p50", "p95", "p99")}
    expected |= {f"find_{k}_matches_mean" for k in KINDS}
    assert expected <= set(figures), expected - set(figures)
    assert all(figures[m]["value"] > 0 for m in expected), figures
    assert figures["find_accession_matches_mean"]["value"] == 1.0  # one step per accession number
