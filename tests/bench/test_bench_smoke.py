"""The benchmark harness runs and speaks its format: one JSON object per figure on stdout.

Only the shape is checked, never the speed: timings on a shared test machine mean nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "accept_complete_1_thread",
    "accept_complete_4_threads",
    "claim_record_1_thread",
    "claim_record_4_threads",
}


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_journal_quick_prints_json_figures() -> None:
    done = run_bench("journal", "--quick", "--db", "sqlite")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines, "no figures printed"
    for line in lines:
        assert line["bench"] == "journal"
        assert line["db"] == "sqlite"
        assert line["n"] > 0
        assert isinstance(line["value"], float | int) and line["value"] > 0, line
        assert line["unit"]
        assert line["machine"]["cpu_count"] >= 1
        assert line["machine"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert EXPECTED <= {line["metric"] for line in lines}


def test_listing_and_unknown_name() -> None:
    listing = run_bench()
    assert listing.returncode == 0, listing.stderr
    assert {line.split()[0] for line in listing.stdout.splitlines()} >= {"journal", "seda", "file", "standardize"}
    wrong = run_bench("jounral")
    assert wrong.returncode == 2
    assert "unknown benchmark 'jounral'" in wrong.stderr
