"""Birth dates as HL7 partial dates: ``YYYY``, ``YYYYMM`` or ``YYYYMMDD``, never invented precision.

A source that knows only the year (common for elderly patients and for
newborns registered before the day is confirmed) must not become 1 January:
that would make a wrong date agree with other wrong dates. Staging tables bring
their own spellings (1980-05-06, 1980/5/6, 1980年5月6日), HL7 brings DTM with
time and zone; all end as the same partial date. Impossible dates (month 13,
30 February, the future, before 1850) are rejected rather than repaired.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

#: the oldest birth year believed; anything earlier is a typo (1080 for 1980)
MIN_YEAR = 1850

#: HL7 DTM: YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]
_HL7 = re.compile(r"(\d{4})(?:(\d{2})(?:(\d{2})(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?")
#: separated forms from staging tables and forms: 1980-05-06, 1980/5/6, 1980.5.6, 1980年5月6日, ISO with time
_SEPARATED = re.compile(
    r"(\d{4})(?:[-/.]|年)(\d{1,2})(?:(?:[-/.]|月)(\d{1,2})日?|月)?(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?"
)
_YEAR = re.compile(r"(\d{4})年?")


@dataclass(frozen=True)
class PartialDate:
    year: int
    month: int | None = None
    day: int | None = None

    @property
    def hl7(self) -> str:
        text = f"{self.year:04d}"
        if self.month is not None:
            text += f"{self.month:02d}"
            if self.day is not None:
                text += f"{self.day:02d}"
        return text

    def is_after(self, today: date) -> bool:
        """True when every date this partial date stands for lies after ``today``."""
        if self.year != today.year:
            return self.year > today.year
        if self.month is None or self.month != today.month:
            return self.month is not None and self.month > today.month
        return self.day is not None and self.day > today.day


def parse(value: str, *, today: date | None = None) -> PartialDate | None:
    """The partial date ``value`` spells, or None when it is not a possible birth date."""
    text = unicodedata.normalize("NFKC", value).strip()
    match = _HL7.fullmatch(text) or _SEPARATED.fullmatch(text) or _YEAR.fullmatch(text)
    if match is None:
        return None
    _, month_text, day_text = (*match.groups(), None, None)[:3]
    year = int(match[1])
    month = int(month_text) if month_text else None
    day = int(day_text) if day_text and month is not None else None
    if year < MIN_YEAR or (month is not None and not 1 <= month <= 12):
        return None
    if day is not None and (month is None or not 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    result = PartialDate(year, month, day)
    return None if result.is_after(today or date.today()) else result


def is_hl7(value: str) -> bool:
    """Whether ``value`` is already an HL7 DTM (kept as sent, birth time included, when valid)."""
    return _HL7.fullmatch(value) is not None
