"""Structured logs carry the route and exchange; JSON lines when asked."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from esb.logs import configure, current_exchange, current_route

ROOT = Path(__file__).resolve().parents[2]


def test_json_lines_carry_route_and_exchange(capsys: pytest.CaptureFixture[str]) -> None:
    configure("INFO", "json")
    try:
        current_route.set("adt-in")
        current_exchange.set("abc123")
        logging.getLogger("esb.test").info("routed")
        logging.getLogger("esb.test").debug("patient data stays out of INFO")
    finally:
        configure("WARNING", "text")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 1
    assert lines[0]["message"] == "routed"
    assert lines[0]["route"] == "adt-in" and lines[0]["exchange"] == "abc123"
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "esb.test"


def test_records_go_to_stderr_as_it_is_when_they_come(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker thread logging after stderr was swapped (and the old one closed) writes to the new one."""
    old, new = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", old)
    configure("INFO", "text")
    try:
        old.close()
        monkeypatch.setattr(sys, "stderr", new)
        logging.getLogger("esb.test").warning("after the swap")
    finally:
        configure("WARNING", "text")
    assert "after the swap" in new.getvalue()


def test_esb_run_refuses_a_route_set_that_does_not_lint(tmp_path: Path) -> None:
    routes = tmp_path / "routes"
    routes.mkdir()
    (routes / "bad.yaml").write_text("route:\n  id: bad\n  from: sead:x\n  steps: []\n")
    env = {**os.environ, "ESB_ROUTES": str(routes), "ESB_DATA_DIR": str(tmp_path / "var"), "ESB_HTTP_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "esb.cli", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"{routes}/bad.yaml:3:9: no adapter for scheme 'sead' (did you mean 'seda'?)" in result.stderr
    assert "the engine did not start" in result.stderr
