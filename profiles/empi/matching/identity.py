"""Comparator kinds for identity: resident IDs, local identifiers, phones, contact, twins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from profiles.empi.matching.kinds import (
    Kind,
    Option,
    Test,
    always,
    is_prefix,
    jaro_winkler,
    levenshtein,
    near,
    placeholder,
)
from profiles.empi.model import PatientRecord

# -- national_id: the GB 11643 resident ID ----------------------------------------------
# prepared: (the ID as sent, whether its check character holds); ``unverified``: the IDs
# differ and one of them fails its check, so it is a mistyped ID, weaker than two valid ones.


def _prepare_national_id(record: PatientRecord, options: Mapping[str, Any]) -> Any:
    """The ID, or None when missing or borrowed: a newborn registered under a parent's ID.

    An ID whose encoded birth year is further from the record's birth year
    than ``max_birth_gap_years`` is someone else's, and so is the ID of a
    record whose given name is a newborn's ``placeholder`` (王芳之女, 宝宝):
    either way it is no evidence at all.
    """
    derived = record.derived
    value = str(derived.get("national_id") or derived.get("national_id_invalid") or "").upper()
    if not value or placeholder(options, str(derived.get("given") or ""), str(derived.get("given_pinyin") or "")):
        return None
    encoded = str(derived.get("national_id_birth_date") or "")
    if not encoded and len(value) == 18 and value[6:14].isdigit():
        encoded = value[6:14]
    birth = str(derived.get("birth_date") or "")
    if len(encoded) >= 4 and len(birth) >= 4 and encoded[:4].isdigit() and birth[:4].isdigit():
        if abs(int(encoded[:4]) - int(birth[:4])) > options["max_birth_gap_years"]:
            return None
    return (value, bool(derived.get("national_id")))


NATIONAL_ID = Kind(
    "national_id",
    _prepare_national_id,
    {
        "exact": Test(lambda a, b, p: a[0] == b[0]),
        "typo": Test(lambda a, b, p: near(a[0], b[0])),
        "birth_part": Test(lambda a, b, p: len(a[0]) == len(b[0]) == 18 and a[0][:14] == b[0][:14]),
        "unverified": Test(lambda a, b, p: not (a[1] and b[1])),
        "else": Test(always),
    },
    (Option("max_birth_gap_years", "int", default=12), Option("placeholder")),
)

# -- phones: any number in common -------------------------------------------------------


def _prepare_phones(record: PatientRecord, options: Mapping[str, Any]) -> Any:
    value = record.derived.get(options["field"])
    if not value:
        return None
    return frozenset((value,) if isinstance(value, str) else value)


PHONES = Kind(
    "phones",
    _prepare_phones,
    {"any_equal": Test(lambda a, b, p: not a.isdisjoint(b)), "else": Test(always)},
    (Option("field", default="phones"),),
)

# -- contact: phone and address together -----------------------------------------------
# prepared: (phones, postal code, city). One comparison, not three: people sharing a home
# share all three, and summing them as if independent would link every household.


def _prepare_contact(record: PatientRecord, options: Mapping[str, Any]) -> Any:
    derived = record.derived
    phones = derived.get(options["phones"]) or ()
    phones = frozenset((phones,) if isinstance(phones, str) else phones)
    postal, city = derived.get(options["postal_code"]) or "", derived.get(options["city"]) or ""
    return (phones, postal, city) if phones or postal or city else None


def _same_phone(a: Any, b: Any) -> bool:
    return not a[0].isdisjoint(b[0])


def _same_place(a: Any, b: Any) -> bool:
    return bool(a[1]) and a[1] == b[1]


CONTACT = Kind(
    "contact",
    _prepare_contact,
    {
        "phone_and_address": Test(lambda a, b, p: _same_phone(a, b) and _same_place(a, b)),
        "phone": Test(lambda a, b, p: _same_phone(a, b)),
        "address": Test(lambda a, b, p: _same_place(a, b)),
        "city": Test(lambda a, b, p: bool(a[2]) and a[2] == b[2]),
        "else": Test(always),
    },
    (Option("phones", default="phones"), Option("postal_code", default="postal_code"), Option("city", default="city")),
)

# -- identifier: a local ID in one assigning authority ----------------------------------


def _prepare_identifier(record: PatientRecord, options: Mapping[str, Any]) -> Any:
    domain = options["domain"]
    for identifier in record.identifiers:
        if domain in (identifier.domain.key, identifier.domain.namespace) and identifier.value:
            return identifier.value
    return None


IDENTIFIER = Kind(
    "identifier",
    _prepare_identifier,
    {
        "exact": Test(lambda a, b, p: a == b),
        "typo": Test(lambda a, b, p: near(a, b)),
        "levenshtein": Test(levenshtein, "max", 1, integer=True),
        "else": Test(always),
    },
    (Option("domain", required=True),),
)

# -- twins: multiple births with different given names ----------------------------------
# prepared: (multiple_birth, birth_order, given, given_pinyin, is_hanzi, birth_date, family_pinyin)


def _prepare_twins(record: PatientRecord, options: Mapping[str, Any]) -> Any:
    """None only without a name and without flags: a placeholder name still leaves the birth order."""
    derived = record.derived
    name = options["field"]
    given = derived.get(name) or ""
    pinyin = derived.get(f"{name}_pinyin") or ""
    if placeholder(options, given, pinyin):
        given = pinyin = ""
    if not given and derived.get("multiple_birth") is not True and derived.get("birth_order") is None:
        return None
    return (
        derived.get("multiple_birth") is True,
        derived.get("birth_order"),
        given,
        pinyin,
        bool(derived.get("is_hanzi")),
        str(derived.get("birth_date") or ""),
        derived.get("family_pinyin") or "",
    )


def _names_differ(a: Any, b: Any, minimum: float) -> bool:
    """Two given names that are not one name misspelt, truncated, reordered or written in pinyin.

    Twins' names often share a character (子涵, 子轩), so two names in hanzi
    differ unless they read the same, hold the same characters or one starts
    the other; names in letters differ below ``min`` Jaro-Winkler similarity
    of their pinyin or when one starts the other. Pinyin with the same letters
    (syllables swapped, 国雷 and 雷锅) or a name order swapped do not count.
    """
    x, y = a[3], b[3]
    if not a[2] or not b[2] or a[2] == b[2] or x == y or (x == b[6] and y == a[6]) or sorted(x) == sorted(y):
        return False
    if a[4] and b[4]:
        return sorted(a[2]) != sorted(b[2]) and not is_prefix(a[2], b[2], 1)
    return not is_prefix(x, y, 1) and not jaro_winkler(x, y, minimum)


def _given_differs(a: Any, b: Any, minimum: float) -> bool:
    """Either record is of a multiple birth, they do not give one birth order, and the names differ."""
    if not (a[0] or b[0]) or (a[1] is not None and a[1] == b[1]):
        return False
    return _names_differ(a, b, minimum)


def _same_birth(a: Any, b: Any, minimum: float) -> bool:
    """Born the same day, names that differ: unflagged twins, as often as a renamed person."""
    return len(a[5]) == 8 and a[5] == b[5] and _names_differ(a, b, minimum)


TWINS = Kind(
    "twins",
    _prepare_twins,
    {
        "birth_order": Test(lambda a, b, p: a[1] is not None and b[1] is not None and a[1] != b[1]),
        "given_differs": Test(_given_differs, "min", 0.9),
        "same_birth": Test(_same_birth, "min", 0.9),
        "else": Test(always),
    },
    (Option("field", default="given"), Option("placeholder")),
)
