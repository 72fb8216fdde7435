"""Comparator kinds for text: names (with pinyin and newborn placeholders), strings, partial dates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import cache
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
    pattern,
    placeholder,
)
from profiles.empi.model import PatientRecord

# -- name: a part of the person's name, with its pinyin --------------------------------


def _prepare_name(record: PatientRecord, options: Mapping[str, Any]) -> Any:
    """(value, pinyin, other part's pinyin, is_hanzi, parent): ``parent`` only for a placeholder.

    A placeholder keeps no value of its own (so no name test can agree with
    it) and carries what is left once the placeholder is cut off: 王芳之女
    leaves 芳, the given name of the mother it names. ``placeholder_field``
    looks for the placeholder in another field: the family name of 王芳之女
    is the mother's, so the family comparison checks the given name.
    """
    derived = record.derived
    name = options["field"]
    value = derived.get(name) or ""
    pinyin = derived.get(f"{name}_pinyin") or ""
    if not value and not pinyin:
        return None
    other = options.get("other") or ""
    other_pinyin = (derived.get(f"{other}_pinyin") or "") if other else ""
    hanzi = bool(derived.get("is_hanzi"))
    checked = options.get("placeholder_field") or name
    if checked != name:
        if placeholder(options, derived.get(checked) or "", derived.get(f"{checked}_pinyin") or ""):
            return ("", "", other_pinyin, hanzi, ("", ""))
    elif placeholder(options, value, pinyin):
        regex = pattern(options["placeholder"])
        return ("", "", other_pinyin, hanzi, (regex.sub("", value), regex.sub("", pinyin)))
    return (value, pinyin, other_pinyin, hanzi, None)


def _name_prefix(a: Any, b: Any, min_length: int) -> bool:
    """A truncated name; across scripts (汉字 vs pinyin) on pinyin, else on the written form."""
    if a[3] == b[3]:
        return is_prefix(a[0], b[0], min_length)
    return is_prefix(a[1], b[1], min_length * 2)


def _crossed(a: Any, b: Any) -> bool:
    """``a`` has only this part and it is ``b``'s other part: a one-word name filed in the wrong field."""
    return bool(a[1]) and not a[2] and a[1] == b[2]


def _names_parent(a: Any, b: Any) -> bool:
    """``a`` is a placeholder naming ``b`` as the parent: 王芳之女 against 王芳 is the daughter, not 王芳.

    For the given-name comparison ``other`` is the family name, which must agree too.
    """
    if a[4] is None or b[4] is not None or a[2] != b[2]:
        return False
    return bool(a[4][0] and a[4][0] == b[0]) or bool(a[4][1] and a[4][1] == b[1])


NAME = Kind(
    "name",
    _prepare_name,
    {
        "parent_of": Test(lambda a, b, p: _names_parent(a, b) or _names_parent(b, a)),
        "placeholder": Test(lambda a, b, p: a[4] is not None or b[4] is not None),
        "exact": Test(lambda a, b, p: bool(a[0]) and a[0] == b[0]),
        "pinyin": Test(lambda a, b, p: bool(a[1]) and a[1] == b[1]),
        "anagram": Test(lambda a, b, p: len(a[0]) > 1 and a[0] != b[0] and sorted(a[0]) == sorted(b[0])),
        "swapped": Test(lambda a, b, p: bool(a[1]) and a[1] != a[2] and a[1] == b[2] and a[2] == b[1]),
        "cross": Test(lambda a, b, p: _crossed(a, b) or _crossed(b, a)),
        "prefix": Test(_name_prefix, "min_length", 1, integer=True),
        "jaro_winkler": Test(lambda a, b, p: jaro_winkler(a[1], b[1], p), "min", 0.9),
        "levenshtein": Test(lambda a, b, p: levenshtein(a[1], b[1], p), "max", 1, integer=True),
        "else": Test(always),
    },
    (Option("field", required=True), Option("other"), Option("placeholder"), Option("placeholder_field")),
    tf_key=lambda value: str(value[1] or value[0]),
)

# -- string: one or more derived fields joined ------------------------------------------


def _prepare_string(record: PatientRecord, options: Mapping[str, Any]) -> Any:
    """The fields joined by a space; a value listed in ``ignore`` (sex ``U``) counts as missing."""
    derived = record.derived
    ignore = options.get("ignore") or ()
    parts = [str(derived.get(name) or "") for name in options["fields"]]
    return " ".join(p for p in parts if p and p not in ignore) or None


STRING = Kind(
    "string",
    _prepare_string,
    {
        "exact": Test(lambda a, b, p: a == b),
        "jaro_winkler": Test(jaro_winkler, "min", 0.9),
        "levenshtein": Test(levenshtein, "max", 1, integer=True),
        "prefix": Test(is_prefix, "min_length", 1, integer=True),
        "head": Test(lambda a, b, p: len(a) >= p and a[:p] == b[:p], "length", 3, integer=True),
        "else": Test(always),
    },
    (Option("fields", "fields", required=True), Option("ignore", "fields", default=())),
    tf_key=str,
)

# -- date: partial YYYY[MM[DD]] ---------------------------------------------------------


def _prepare_date(record: PatientRecord, options: Mapping[str, Any]) -> Any:
    """The date, or when missing the ``fallback`` field (the birth date the resident ID encodes).

    The fallback is taken only when the ``fallback_if`` field is filled (the
    ID passed its check: a mistyped ID's date is no better than its check
    character). A record named as a newborn ``placeholder`` carries a
    parent's ID, so its fallback would be the parent's birth date: it gets none.
    """
    derived = record.derived
    value = str(derived.get(options["field"]) or "")
    fallback, condition = options.get("fallback"), options.get("fallback_if")
    if not value and fallback and (not condition or derived.get(condition)):
        given, pinyin = str(derived.get("given") or ""), str(derived.get("given_pinyin") or "")
        value = "" if placeholder(options, given, pinyin) else str(derived.get(fallback) or "")
    return value if len(value) in (4, 6, 8) and value.isdigit() else None


@cache
def _ordinal(value: str) -> int | None:
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:])).toordinal()
    except ValueError:
        return None


def _within_days(a: str, b: str, days: int) -> bool:
    if len(a) != 8 or len(b) != 8:
        return False
    x, y = _ordinal(a), _ordinal(b)
    return x is not None and y is not None and abs(x - y) <= days


DATE = Kind(
    "date",
    _prepare_date,
    {
        "exact": Test(lambda a, b, p: len(a) == 8 and a == b),
        "transposed": Test(
            lambda a, b, p: len(a) == len(b) == 8 and a[4:6] != a[6:] and a[:4] + a[6:] + a[4:6] == b,
        ),
        "one_year": Test(
            lambda a, b, p: len(a) == len(b) == 8 and a[4:] == b[4:] and abs(int(a[:4]) - int(b[:4])) == 1
        ),
        "typo": Test(lambda a, b, p: len(a) == 8 and near(a, b)),
        "days": Test(_within_days, "max", 1, integer=True),
        "year_month": Test(lambda a, b, p: len(a) >= 6 and len(b) >= 6 and a[:6] == b[:6]),
        "year": Test(lambda a, b, p: a[:4] == b[:4]),
        "years": Test(lambda a, b, p: abs(int(a[:4]) - int(b[:4])) <= p, "max", 1, integer=True),
        "else": Test(always),
    },
    (Option("field", default="birth_date"), Option("fallback"), Option("fallback_if"), Option("placeholder")),
)
