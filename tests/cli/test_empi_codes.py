"""``esb empi codes list|map|check`` and the ``code_maps`` override files the EMPI service loads (A1.11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine

from esb.cli.common import main_group
from profiles.empi.config import load_empi_config
from profiles.empi.model import PatientRecord
from profiles.empi.service import build_index

OVERRIDE = """\
# a hospital whose HIS codes sex 3/4 and knows a private marital status
maps:
  HIS^HOSP1:
    sex: {"3": F, "4": M}
"""
BROKEN = """\
code_sets:
  sex:
    codes:
      X: {display: Extra, colour: red}
maps:
  HIS^HOSP1:
    sex: {"3": F, "4": Z}
    blood: {"1": A}
"""


def esb(*args: str, config: Path | None = None) -> Result:
    env = {"ESB_EMPI_CONFIG": str(config) if config else "/nonexistent/empi.yaml", "ESB_CONFIG": None}
    return CliRunner(env=env).invoke(main_group, list(args), prog_name="esb", catch_exceptions=False)


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """An empi.yaml whose ``code_maps`` names one override file."""
    override = tmp_path / "hosp1-codes.yaml"
    override.write_text(OVERRIDE, encoding="utf-8")
    config = tmp_path / "empi.yaml"
    config.write_text(f"code_maps:\n  - {override}\n", encoding="utf-8")
    return config


@pytest.fixture(autouse=True)
def allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESB_ADMIN_DENY", raising=False)


def test_list_shows_the_standard_codes_of_one_or_every_code_set() -> None:
    sex = json.loads(esb("--json", "empi", "codes", "list", "sex").stdout)
    assert {r["code"] for r in sex} == {"M", "F", "O", "U", "A", "N"}
    assert {r["code_set"] for r in sex} == {"sex"} and sex[0]["standard"] == "HL7 0001"
    every = json.loads(esb("--json", "empi", "codes", "list").stdout)
    assert {"sex", "marital_status", "ethnicity"} <= {r["code_set"] for r in every}
    unknown = esb("empi", "codes", "list", "blood")
    assert unknown.exit_code == 2 and "code set 'blood' is not defined" in unknown.stderr


def test_map_uses_the_shipped_sets_and_the_deployment_override(deployment: Path) -> None:
    shipped = json.loads(esb("--json", "empi", "codes", "map", "HIS^HOSP1", "sex", "男").stdout)
    assert (shipped["code"], shipped["display"]) == ("M", "Male")
    # "3" means nothing in the shipped sets; the deployment's file maps it for HIS (at any facility)
    nothing = esb("empi", "codes", "map", "HIS^HOSP1", "sex", "3")
    assert nothing.exit_code == 1 and "maps to no standard code" in nothing.stderr
    local = esb("--json", "empi", "codes", "map", "HIS^HOSP1", "sex", "3", config=deployment)
    assert local.exit_code == 0 and json.loads(local.stdout)["code"] == "F"
    other = esb("empi", "codes", "map", "LIS^LAB", "sex", "3", config=deployment)
    assert other.exit_code == 1


def test_check_reports_each_problem_at_its_line_and_column(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    result = esb("empi", "codes", "check", str(broken))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{broken}:4:7: code_sets: sex: codes: X: unknown key 'colour' (allowed: aliases, display, zh)",
        f"{broken}:7:24: maps: HIS^HOSP1: sex: '4' maps to 'Z', which is not a code of 'sex' "
        "(allowed: A, F, M, N, O, U)",
        f"{broken}:8:5: maps: HIS^HOSP1: code set 'blood' is not defined (defined: ethnicity, marital_status, sex)",
    ]
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("maps: {HIS: [\n", encoding="utf-8")
    bad = esb("empi", "codes", "check", str(syntax))
    assert bad.exit_code == 1 and bad.stdout.startswith(f"{syntax}:2:1: YAML syntax")
    good = tmp_path / "good.yaml"
    good.write_text(OVERRIDE, encoding="utf-8")
    ok = esb("empi", "codes", "check", str(good))
    assert ok.exit_code == 0 and ok.stdout == f"{good}: ok\n"


def test_every_command_needs_empi_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESB_ADMIN_DENY", "empi.read")
    good = tmp_path / "good.yaml"
    good.write_text(OVERRIDE, encoding="utf-8")
    for args in (("list",), ("map", "HIS", "sex", "1"), ("check", str(good))):
        denied = esb("empi", "codes", *args)
        assert denied.exit_code == 1 and "may not empi.read" in denied.stderr and denied.stdout == ""


def test_the_service_standardizes_with_the_configured_code_maps(deployment: Path) -> None:
    config = load_empi_config(deployment)
    assert [p.name for p in config.code_maps] == ["hosp1-codes.yaml"]
    index = build_index(create_engine("sqlite://"), config)
    record = PatientRecord(sex="3", source="HIS^HOSP1")
    assert index.standardize(record).sex == "F"
    plain = build_index(create_engine("sqlite://"), load_empi_config(deployment.parent / "absent.yaml"))
    assert plain.standardize(record).sex != "F"
