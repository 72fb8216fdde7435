"""The CLI under test: ``esb`` run in-process by click's CliRunner against a real journal."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from esb.cli.common import main_group


@dataclass
class Cli:
    """``cli("messages", "list")``: runs ``esb`` with the env a deployment would set."""

    db_url: str
    routes: Path
    data_dir: Path

    def __call__(self, *args: str) -> Result:
        env = {
            "ESB_DB_URL": self.db_url,
            "ESB_ROUTES": str(self.routes),
            "ESB_DATA_DIR": str(self.data_dir),
            "ESB_NODE_ID": "cli-test",
            "ESB_CONFIG": None,
        }
        runner = CliRunner(env=env)
        return runner.invoke(main_group, list(args), prog_name="esb", catch_exceptions=False)

    def json(self, *args: str) -> Any:
        result = self("--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def make_cli(tmp_path: Path) -> Callable[[str], Cli]:
    """``make_cli(db_url)``: a CLI whose settings point at that database and tmp_path/routes."""

    def make(db_url: str) -> Cli:
        return Cli(db_url, tmp_path / "routes", tmp_path / "var")

    return make
