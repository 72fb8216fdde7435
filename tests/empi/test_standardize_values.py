"""Resident IDs, birth dates and phone numbers: checked, converted, kept partial where partial."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles.empi.model import Domain, Identifier, PatientRecord
from profiles.empi.standardize import dates, phones, resident_id, standardize

TODAY = date(2024, 6, 15)


def mod11_2(first17: str) -> str:
    """ISO 7064 MOD 11-2 written the other way round from the module, to check it independently."""
    remainder = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(first17)) % 11
    value = (12 - remainder) % 11
    return "X" if value == 10 else str(value)


# -- resident ID --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, value, birth, sex",
    [
        ("11010519491231002X", "11010519491231002X", "19491231", "F"),  # the GB 11643 example, X check
        ("11010519491231002x", "11010519491231002X", "19491231", "F"),
        ("110105 1949 1231 002X", "11010519491231002X", "19491231", "F"),
        ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X", "19491231", "F"),
        ("440524188001010014", "440524188001010014", "18800101", "M"),  # the other GB 11643 example
    ],
)
def test_valid_18_digit_ids(raw: str, value: str, birth: str, sex: str) -> None:
    parsed = resident_id.parse(raw, today=TODAY)
    assert parsed == resident_id.ResidentId(value, birth, sex)


def test_area_codes_are_not_checked_against_a_list() -> None:
    first17 = "99999919900101123"  # no such area; python-stdnum's cn.ric would refuse it
    parsed = resident_id.parse(first17 + mod11_2(first17), today=TODAY)
    assert parsed is not None and parsed.sex == "M" and parsed.birth_date == "19900101"


@pytest.mark.parametrize(
    "raw",
    [
        "110105194912310021",  # wrong check digit
        "11010519491231002Y",
        "1101051949123100",  # too short
        "1101051949123100211",
        "E12345678",  # a passport number in the wrong field
        "",
    ],
)
def test_invalid_ids_are_refused(raw: str) -> None:
    assert resident_id.parse(raw, today=TODAY) is None


def test_impossible_birth_dates_in_an_id_are_refused_even_with_a_good_check() -> None:
    for first17 in ("11010519800230123", "11010520990101123", "11010517000101123"):
        assert resident_id.parse(first17 + mod11_2(first17), today=TODAY) is None


def test_legacy_15_digit_ids_are_converted() -> None:
    assert resident_id.upgrade15("110105491231002") == "11010519491231002X"
    parsed = resident_id.parse("110105491231002", today=TODAY)
    assert parsed == resident_id.ResidentId("11010519491231002X", "19491231", "F")
    odd = resident_id.parse("310101800506123", today=TODAY)
    assert odd is not None and odd.value == "31010119800506123" + mod11_2("31010119800506123")
    assert (odd.birth_date, odd.sex) == ("19800506", "M")
    assert resident_id.parse("110105490231002", today=TODAY) is None  # 31 February 1949


@settings(database=None, max_examples=200)
@given(
    area=st.integers(100000, 999999),
    birth=st.dates(date(1900, 1, 1), TODAY),
    sequence=st.integers(0, 999),
    position=st.integers(0, 16),
    shift=st.integers(1, 9),
)
def test_checksum_catches_every_single_digit_typo(
    area: int, birth: date, sequence: int, position: int, shift: int
) -> None:
    first17 = f"{area}{birth:%Y%m%d}{sequence:03d}"
    good = first17 + mod11_2(first17)
    parsed = resident_id.parse(good, today=TODAY)
    assert parsed is not None and parsed.birth_date == f"{birth:%Y%m%d}"
    assert parsed.sex == ("M" if sequence % 2 else "F")
    typo = good[:position] + str((int(good[position]) + shift) % 10) + good[position + 1 :]
    assert resident_id.parse(typo, today=TODAY) is None


def test_record_national_id_derivations() -> None:
    ok = standardize(PatientRecord(national_id="110105491231002", sex="M"), today=TODAY)
    assert ok.national_id == "11010519491231002X"
    assert ok.derived["national_id"] == "11010519491231002X"
    assert ok.derived["national_id_invalid"] == ""
    assert (ok.derived["national_id_birth_date"], ok.derived["national_id_sex"]) == ("19491231", "F")
    assert ok.derived["sex"] == "M"  # what the record says; the ID's sex is there to cross-check it

    bad = standardize(PatientRecord(national_id=" 110105194912310021 "), today=TODAY)
    assert bad.derived["national_id"] == ""
    assert bad.derived["national_id_invalid"] == "110105194912310021"
    assert bad.national_id == "110105194912310021"  # kept in the record for a clerk to fix

    none = standardize(PatientRecord(), today=TODAY).derived
    assert (none["national_id"], none["national_id_invalid"], none["national_id_sex"]) == ("", "", "")


def test_national_id_sent_as_an_identifier() -> None:
    citizens = Domain("CHN", "2.16.156", "ISO")
    record = PatientRecord(identifiers=(Identifier("11010519491231002X", domain=citizens, type_code="NNCHN"),))
    assert standardize(record, today=TODAY).derived["national_id"] == "11010519491231002X"


# -- dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1980", "1980"),
        ("198005", "198005"),
        ("19800506", "19800506"),
        ("19800506123000+0800", "19800506"),
        ("1980-05-06", "19800506"),
        ("1980/5/6", "19800506"),
        ("1980.5.6", "19800506"),
        ("1980-05", "198005"),
        ("1980年5月6日", "19800506"),
        ("1980年5月", "198005"),
        ("1980-05-06T08:30:00", "19800506"),
        ("１９８０－０５－０６", "19800506"),
        ("20000229", "20000229"),  # a leap day
        ("20240615", "20240615"),  # today
    ],
)
def test_dates_in_every_spelling_stay_as_precise_as_sent(raw: str, expected: str) -> None:
    parsed = dates.parse(raw, today=TODAY)
    assert parsed is not None and parsed.hl7 == expected


@pytest.mark.parametrize(
    "raw",
    ["19801306", "19800230", "19000229", "198000", "20240616", "202407", "2025", "1849", "80-05-06", "06/05/1980", "x"],
)
def test_impossible_dates_are_rejected(raw: str) -> None:
    assert dates.parse(raw, today=TODAY) is None


def test_record_birth_date_partial_and_invalid() -> None:
    partial = standardize(PatientRecord(birth_date="1980-05"), today=TODAY)
    assert partial.birth_date == "198005"
    assert [partial.derived[k] for k in ("birth_date", "birth_year", "birth_month", "birth_day")] == [
        "198005",
        "1980",
        "05",
        "",
    ]
    with_time = standardize(PatientRecord(birth_date="202406150830"), today=TODAY)
    assert with_time.birth_date == "202406150830"  # a newborn's birth time is kept in the record
    assert with_time.derived["birth_date"] == "20240615"
    wrong = standardize(PatientRecord(birth_date="19800230"), today=TODAY)
    assert wrong.derived["birth_date"] == "" and wrong.derived["birth_date_invalid"] == "19800230"
    assert wrong.birth_date == "19800230"


# -- phones -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, e164",
    [
        ("13812345678", "+8613812345678"),
        ("138-1234-5678", "+8613812345678"),
        ("+86 138 1234 5678", "+8613812345678"),
        ("+86-13812345678", "+8613812345678"),
        ("008613812345678", "+8613812345678"),
        ("8613812345678", "+8613812345678"),
        ("１３８１２３４５６７８", "+8613812345678"),
        ("010-12345678", "+861012345678"),
        ("(010) 1234 5678", "+861012345678"),
        ("+86 10 1234 5678", "+861012345678"),
        ("021-12345678", "+862112345678"),
        ("0755-88888888", "+8675588888888"),
        ("+852 2123 4567", "+85221234567"),
    ],
)
def test_phone_spellings_become_e164(raw: str, e164: str) -> None:
    assert phones.to_e164(raw) == e164


@pytest.mark.parametrize("raw", ["12345", "12345678", "138123456", "not a number", ""])
def test_invalid_phones_are_no_evidence(raw: str) -> None:
    assert phones.to_e164(raw) is None


def test_record_phones() -> None:
    record = standardize(PatientRecord(phones=("13812345678/010-12345678", "+86 138 1234 5678", "12345")))
    assert record.derived["phones"] == ("+8613812345678", "+861012345678")
    assert record.phones == ("+8613812345678", "+861012345678", "12345")
