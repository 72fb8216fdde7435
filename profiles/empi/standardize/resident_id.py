"""The Resident Identity Card number (GB 11643-1999): the strongest identity evidence in China.

Layout of the 18 characters: 6-digit area code, birth date YYYYMMDD, 3-digit
sequence (odd for men, even for women), check character (ISO 7064 MOD 11-2,
``X`` for 10). Legacy 15-digit numbers (issued before 1999) have a 2-digit year
and no check character; they are converted to 18 by inserting ``19`` and
computing the check.

The area code is not checked against a list: areas are renamed and merged
every year, and a table that lags (python-stdnum's ``cn.ric``) rejects valid
IDs of real patients. A checksum and a possible birth date catch typos; that is
what this module checks. MOD 11-2 is written out because it is four lines and
python-stdnum is not otherwise needed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from profiles.empi.standardize import dates

_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK = "10X98765432"
_ID18 = re.compile(r"\d{17}[\dX]")
_ID15 = re.compile(r"\d{15}")
_SEPARATORS = re.compile(r"[\s\-]+")


@dataclass(frozen=True)
class ResidentId:
    """A valid 18-character ID and what it encodes."""

    value: str
    birth_date: str
    sex: str


def check_character(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def clean(raw: str) -> str:
    """Full-width digits folded, spaces and dashes dropped, a lower-case x raised."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper()


def upgrade15(id15: str) -> str:
    """A legacy 15-digit ID as its 18-character form (all legacy IDs are of people born in the 1900s)."""
    first17 = f"{id15[:6]}19{id15[6:]}"
    return first17 + check_character(first17)


@lru_cache(maxsize=1 << 16)
def _parse(value: str) -> ResidentId | None:
    if _ID15.fullmatch(value):
        value = upgrade15(value)
    elif not _ID18.fullmatch(value) or check_character(value[:17]) != value[17]:
        return None
    return ResidentId(value=value, birth_date=value[6:14], sex="M" if int(value[16]) % 2 else "F")


def parse(raw: str, *, today: date | None = None) -> ResidentId | None:
    """The ID ``raw`` spells with a valid check character and a possible birth date, else None."""
    resident_id = _parse(clean(raw))
    if resident_id is None:
        return None
    birth = dates.parse(resident_id.birth_date, today=today)
    if birth is None or birth.day is None:
        return None
    return resident_id
