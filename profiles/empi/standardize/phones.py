"""Telephone numbers as E.164 (``+8613812345678``), so 138-1234-5678 and +86 138 1234 5678 agree.

phonenumbers knows every numbering plan (Chinese area codes with and without
the trunk 0, 0086 and 86 prefixes, full-width digits). A number it does not
hold valid is not a key for matching: a landline without its area code
(12345678) would collide across cities.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

DEFAULT_REGION = "CN"

#: what staging tables put between several numbers in one field
_SEVERAL = re.compile(r"[,;，；、|/]+")


@lru_cache(maxsize=1 << 16)
def to_e164(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """The E.164 form of one number, or None when it is not a valid number (extensions are dropped)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def split(raw: str) -> list[str]:
    """The numbers in one field (``13812345678/010-12345678``), stripped, empty ones dropped."""
    return [part.strip() for part in _SEVERAL.split(raw) if part.strip()]


def normalize(phones: tuple[str, ...], region: str = DEFAULT_REGION) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the record's phones with valid ones in E.164 and the rest as sent, the valid E.164 numbers).

    Both without duplicates and in the order given. Invalid numbers stay in the
    record (a clerk may still read them) but are no evidence for matching.
    """
    stored: dict[str, None] = {}
    valid: dict[str, None] = {}
    for field in phones:
        for raw in split(field):
            e164 = to_e164(raw, region)
            if e164 is None:
                stored[raw] = None
            else:
                stored[e164] = None
                valid[e164] = None
    return tuple(stored), tuple(valid)
