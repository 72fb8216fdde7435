"""Code sets and per-system maps (A1.11): shipped standards, deployment overrides, loud config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.errors import ConfigError
from profiles.empi.model import PatientRecord
from profiles.empi.standardize import CodeMaps, standardize


@pytest.fixture(scope="module")
def shipped() -> CodeMaps:
    return CodeMaps.default()


@pytest.mark.parametrize(
    "local, standard",
    [
        ("M", "M"),
        ("f", "F"),
        ("1", "M"),  # GB/T 2261.1
        ("2", "F"),
        ("0", "U"),
        ("9", "U"),
        ("男", "M"),
        ("女性", "F"),
        (" Female ", "F"),
        ("未知", "U"),
        ("A", "A"),
        ("X", None),
        ("", None),
    ],
)
def test_sex_hl7_0001_and_gbt_2261_1(shipped: CodeMaps, local: str, standard: str | None) -> None:
    assert shipped.map("ANY", "sex", local) == standard


@pytest.mark.parametrize(
    "local, standard",
    [("10", "S"), ("20", "M"), ("22", "M"), ("30", "W"), ("40", "D"), ("90", "U"), ("已婚", "M"), ("W", "W")],
)
def test_marital_status_hl7_0002_and_gbt_2261_2(shipped: CodeMaps, local: str, standard: str) -> None:
    assert shipped.map("ANY", "marital_status", local) == standard


@pytest.mark.parametrize(
    "local, standard",
    [
        ("01", "01"),
        ("1", "01"),
        ("汉族", "01"),
        ("汉", "01"),
        ("Han", "01"),
        ("HA", "01"),
        ("维吾尔族", "05"),
        ("Uyghur", "05"),
        ("朝鲜族", "10"),
        ("基诺族", "56"),
        ("５６", "56"),
        ("97", "97"),
        ("57", None),
    ],
)
def test_ethnicity_gb_3304(shipped: CodeMaps, local: str, standard: str | None) -> None:
    assert shipped.map("ANY", "ethnicity", local) == standard


def test_gb_3304_lists_the_56_ethnic_groups(shipped: CodeMaps) -> None:
    codes = shipped.code_set("ethnicity").codes
    groups = [codes[f"{n:02d}"] for n in range(1, 57)]
    assert all(group.zh.endswith("族") for group in groups)
    assert len({group.zh for group in groups}) == 56
    assert (groups[0].zh, groups[55].zh) == ("汉族", "基诺族")


def test_crosswalk_converts_back(shipped: CodeMaps) -> None:
    assert shipped.code_set("sex").convert("M", "GB/T 2261.1") == "1"
    assert shipped.code_set("sex").convert("U", "GB/T 2261.1") == "0"
    assert shipped.code_set("marital_status").convert("M", "GB/T 2261.2") == "20"
    assert shipped.code_set("sex").convert("A", "GB/T 2261.1") is None


OVERRIDE = """\
maps:
  HIS_A:
    sex: {"1": F, "2": M, "3": U}      # this HIS numbers women first
    marital_status: {"Y": M, "N": S}
  LIS^LAB1:
    ethnicity: {"H": "01"}
"""


def test_per_system_override(tmp_path: Path) -> None:
    (tmp_path / "his_a.yaml").write_text(OVERRIDE, encoding="utf-8")
    codes = CodeMaps.load([tmp_path / "his_a.yaml"])
    assert codes.map("HIS_A", "sex", "1") == "F"
    assert codes.map("HIS_A^HOSP1", "sex", "1") == "F"  # the application's map, at any facility
    assert codes.map("HIS_A", "sex", "男") == "M"  # what the system does not map itself still maps
    assert codes.map("HIS_B", "sex", "1") == "M"
    assert codes.map("HIS_A", "marital_status", "y") == "M"
    assert codes.map("LIS^LAB1", "ethnicity", "H") == "01"
    assert codes.map("LIS^LAB2", "ethnicity", "H") is None

    record = PatientRecord(sex="1", marital_status="Y", source="HIS_A^HOSP1")
    standardized = standardize(record, codes=codes)
    assert (standardized.sex, standardized.derived["sex"]) == ("F", "F")
    assert standardized.marital_status == "M"
    assert standardize(record.with_(source="HIS_B"), codes=codes).derived["sex"] == "M"


def test_a_directory_of_overrides_and_a_new_code_set(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "code_sets:\n  blood_type:\n    standard: local\n    codes:\n      A: {zh: A型}\n      O: {zh: O型}\n"
        "maps:\n  HIS_A:\n    blood_type: {'1': A}\n",
        encoding="utf-8",
    )
    (tmp_path / "b.yaml").write_text("code_sets:\n  sex:\n    codes:\n      M: {aliases: [公]}\n", encoding="utf-8")
    codes = CodeMaps.load([tmp_path])
    assert codes.map("X", "blood_type", "o型") == "O"
    assert codes.map("HIS_A", "blood_type", "1") == "A"
    assert codes.map("X", "sex", "公") == "M"
    assert codes.map("X", "sex", "男") == "M"  # the shipped aliases are still there
    assert CodeMaps.load([tmp_path], shipped=False).code_sets.keys() == {"blood_type", "sex"}


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "maps:\n  HIS_A:\n    sex: {'1': Q}\n",
            "maps to 'Q', which is not a code of 'sex' (allowed: A, F, M, N, O, U)",
        ),
        ("maps:\n  HIS_A:\n    sexx: {'1': M}\n", "code set 'sexx' is not defined"),
        ("mapz: {}\n", "unknown key 'mapz' (allowed: code_sets, maps)"),
        ("code_sets:\n  sex:\n    codes:\n      F: {aliases: [男]}\n", "maps '男' to 'F', but"),
        ("code_sets:\n  sex:\n    codez: {}\n", "unknown key 'codez'"),
        ("maps: [1, 2]\n", "maps must be a mapping (got list)"),
        ("maps: {a: [\n", "cannot be read"),
    ],
)
def test_bad_override_files_name_file_and_value(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        CodeMaps.load([path])
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_unknown_code_set_is_an_error(shipped: CodeMaps) -> None:
    with pytest.raises(ConfigError, match="code set 'religion' is not defined"):
        shipped.map("X", "religion", "1")
