"""Comparators and their levels, match weights, term frequencies and blocking keys.

Records go through the real ``standardize`` so these tests also hold the
standardize -> matching contract; a few build ``derived`` by hand where the
contract's corner (an invalid ID, twins' flags) is the point.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pytest

from profiles.empi.matching import Matcher, load_model, parse_model
from profiles.empi.matching.comparators import near
from profiles.empi.matching.synthetic import resident_id
from profiles.empi.model import Address, Domain, Identifier, PatientRecord, PersonName
from profiles.empi.standardize import standardize

MODEL = load_model()
MATCHER = Matcher(MODEL)
ID_1990 = resident_id("110105", date(1990, 3, 7), 123)


def person(
    family: str = "张",
    given: str = "三丰",
    birth: str = "19900307",
    national_id: str = ID_1990,
    phone: str = "13812345678",
    postal: str = "100020",
    sex: str = "M",
    **fields: Any,
) -> PatientRecord:
    return standardize(
        PatientRecord(
            names=(PersonName(family, given),),
            sex=sex,
            birth_date=birth,
            national_id=national_id,
            phones=(phone,) if phone else (),
            addresses=(Address(city="北京", postal_code=postal),) if postal else (),
            **fields,
        )
    )


def level(a: PatientRecord, b: PatientRecord, comparison: str) -> str:
    """The level one comparison of the shipped model reaches for a pair."""
    for evidence in MATCHER.score(a, b).evidence:
        if evidence.field == comparison:
            return evidence.level
    raise AssertionError(f"no comparison {comparison}")


def test_near_is_one_slip_of_the_keyboard() -> None:
    assert near("110105199003071234", "110105199003071284")
    assert near("19900307", "19900370")  # neighbours swapped
    assert not near("19900307", "19900307")
    assert not near("19900307", "19910308")  # two places apart
    assert not near("1990", "19900")


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (PersonName("张", "三丰"), "exact"),
        (PersonName("張", "三豐"), "exact"),  # traditional folded by standardize
        (PersonName("ZHANG", "SANFENG"), "pinyin"),
        (PersonName("Zhang", "San Feng"), "pinyin"),
        (PersonName("张", "丰三"), "anagram"),
        (PersonName("三丰", "张"), "swapped"),
        (PersonName("张", "三"), "prefix"),
        (PersonName("张", "思远"), "else"),
    ],
)
def test_given_name_levels(other: PersonName, expected: str) -> None:
    a = person()
    b = standardize(a.with_(names=(other,), derived={}))
    assert level(a, b, "given") == expected


def test_a_placeholder_name_is_no_name_and_one_naming_the_parent_rules_the_parent_out() -> None:
    mother = person("王", "芳", birth="19920101", sex="F")
    daughter = person("王", "芳之女", birth="20250301", sex="F")
    baby = person("李", "宝宝", birth="20250301", sex="F")
    assert level(mother, daughter, "given") == "parent_of"
    assert level(mother, daughter, "family") == "placeholder"
    assert level(mother, baby, "given") == "placeholder"
    assert MATCHER.score(mother, daughter).decision == "new"


def test_birth_date_levels() -> None:
    a = person(birth="19900307")
    cases = {
        "19900307": "exact",
        "19900703": "transposed",
        "19910307": "one_year",
        "19900308": "typo",
        "19900321": "year_month",
        "19901225": "year",
        "1990": "year",
        "19750307": "else",
    }
    for value, expected in cases.items():
        b = person(birth=value, national_id="")
        assert level(a, b, "birth_date") == expected, value
    day_before = person(birth="19900309", national_id="")
    assert level(person(birth="19900310", national_id=""), day_before, "birth_date") == "days"


def test_a_missing_birth_date_falls_back_to_the_one_the_id_encodes() -> None:
    a = person(birth="", national_id=ID_1990)
    b = person(birth="19900307", national_id="")
    assert a.derived["birth_date"] == ""
    assert level(a, b, "birth_date") == "exact"


def test_national_id_levels() -> None:
    a = person()
    legacy = ID_1990[:6] + ID_1990[8:17]
    assert level(a, person(national_id=legacy), "national_id") == "exact"  # 15 digits converted
    typo = ID_1990[:10] + ("5" if ID_1990[10] != "5" else "6") + ID_1990[11:]
    assert person(national_id=typo).derived["national_id_invalid"] == typo
    assert level(a, person(national_id=typo), "national_id") == "typo"
    other = resident_id("310104", date(1990, 3, 7), 555)
    assert level(a, person(national_id=other), "national_id") == "else"
    garbled = "11010519900307" + "9999"
    assert level(a, person(national_id=garbled), "national_id") in ("unverified", "typo")


def test_a_parents_id_on_a_newborn_is_no_evidence() -> None:
    """The ID's birth year is decades from the record's: it is someone else's (max_birth_gap_years)."""
    mother = person("刘", "丽", birth="19900307", sex="F")
    newborn = person("刘", "子涵", birth="20250101", sex="F")
    assert newborn.derived["national_id"] == mother.derived["national_id"]
    assert level(mother, newborn, "national_id") == "missing"
    assert MATCHER.score(mother, newborn).decision == "new"


def test_contact_phone_and_postal_code() -> None:
    a = person()
    assert level(a, person(), "contact") == "phone_and_address"
    assert level(a, person(postal="200000"), "contact") == "phone"
    assert level(a, person(phone="13900000000"), "contact") == "address"
    assert level(a, person(phone="", postal=""), "contact") == "missing"


def test_unknown_sex_is_missing_not_a_disagreement() -> None:
    assert level(person(sex="M"), person(sex="U"), "sex") == "missing"
    assert level(person(sex="M"), person(sex="F"), "sex") == "else"


def test_weights_are_log2_m_over_u_and_add_up() -> None:
    a, b = person(), person(phone="13900000000")
    result = MATCHER.score(a, b)
    for evidence in result.evidence:
        comparison = MODEL.comparison(evidence.field)
        if evidence.level != "missing" and comparison.frequencies is None:
            chosen = comparison.level(evidence.level)
            assert evidence.weight == pytest.approx(math.log2(chosen.m / chosen.u), abs=1e-3)
    assert result.weight == pytest.approx(sum(e.weight for e in result.evidence), abs=0.01)
    assert result.decision == "link" and result.probability > 0.99


def test_a_common_name_weighs_less_than_a_rare_one() -> None:
    common = Matcher(MODEL).score(person("王", "伟"), person("王", "伟"))
    rare = Matcher(MODEL).score(person("欧阳", "修远"), person("欧阳", "修远"))
    given = {e.field: e.weight for e in common.evidence}, {e.field: e.weight for e in rare.evidence}
    assert given[0]["family"] < given[1]["family"]
    assert given[0]["given"] < given[1]["given"]


def test_string_and_identifier_kinds() -> None:
    model = parse_model(
        """
matching:
  thresholds: {upper: 5, lower: 1}
  blocking:
  - {name: mrn, key: [identifier(H1)]}
  comparisons:
  - name: mrn
    kind: identifier
    domain: H1
    levels:
    - {name: exact, m: 0.9, u: 0.001}
    - {name: typo, m: 0.05, u: 0.001}
    - {name: else, m: 0.05, u: 0.998}
  - name: city
    kind: string
    fields: [city]
    levels:
    - {name: close, test: jaro_winkler, min: 0.9, m: 0.9, u: 0.1}
    - {name: else, m: 0.1, u: 0.9}
"""
    )
    matcher = Matcher(model)

    def record(mrn: str, city: str) -> PatientRecord:
        return standardize(PatientRecord(identifiers=(Identifier(mrn, Domain("H1")),), addresses=(Address(city=city),)))

    a = record("00123456", "广州市")
    assert matcher.blocking_keys(a) == ["mrn:00123456"]
    evidence = {e.field: e.level for e in matcher.score(a, record("00123465", "广州")).evidence}
    assert evidence == {"mrn": "typo", "city": "close"}


def test_blocking_keys_are_stable_strings() -> None:
    a = person(phone="13812345678")
    keys = MATCHER.blocking_keys(a)
    assert f"nid:{ID_1990}" in keys
    assert "fbd:zhang|19900307" in keys
    assert "tel:+8613812345678" in keys
    assert keys == MATCHER.blocking_keys(person(phone="138 1234 5678"))
    swapped = standardize(a.with_(names=(PersonName("三丰", "张"),), derived={}))
    assert "fg:sanfeng|zhang" in keys and "fg:sanfeng|zhang" in MATCHER.blocking_keys(swapped)


def test_blocking_skips_a_rule_with_an_empty_part() -> None:
    keys = MATCHER.blocking_keys(person(birth="", national_id="", phone=""))
    assert not [k for k in keys if k.startswith(("nid:", "fbd:", "gbd:", "tel:"))]
    assert "fg:sanfeng|zhang" in keys
