"""How registrations go wrong, one seeded draw per record and field.

The rates are what regional platforms report for hospital feeds (an order
of magnitude, not a measurement): pinyin-only names from DICOM and foreign
systems are common, a typed resident ID is missing in a quarter of outpatient
registrations, phones change often; swapped or truncated names and shifted
birth dates are rare. Each applied corruption is named in ``kinds``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

from opencc import OpenCC
from pypinyin import lazy_pinyin

from profiles.empi.model import Address, PersonName

#: the 3,755 level-1 characters of GB 2312: what an input method offers first
COMMON_CHARS = tuple(
    bytes([high, low]).decode("gb2312")
    for high in range(0xB0, 0xD8)
    for low in range(0xA1, 0xFF)
    if high < 0xD7 or low <= 0xF9
)


class Corruptor:
    def __init__(self, rng: random.Random, s2t: OpenCC) -> None:
        self.rng = rng
        self.s2t = s2t
        self.homophones: dict[str, list[str]] = {}
        for char, reading in zip(COMMON_CHARS, lazy_pinyin(list(COMMON_CHARS)), strict=True):
            self.homophones.setdefault(reading, []).append(char)

    def given(self, family: str, given: str, kinds: list[str]) -> tuple[str, str]:
        draw = self.rng.random()
        if draw < 0.015 and len(given) == 2:
            kinds.append("given_swapped")
            return family, given[::-1]
        if draw < 0.03 and len(given) == 2:
            kinds.append("given_truncated")
            return family, given[:1]
        if draw < 0.04:
            kinds.append("name_order_swapped")
            return given, family
        return family, given

    def script(
        self,
        family: str,
        given: str,
        kinds: list[str],
        surname_pinyin: Callable[[str], str],
        pinyin_of: Callable[[str], str],
    ) -> PersonName:
        draw = self.rng.random()
        if draw < 0.12:
            kinds.append("pinyin_only")
            family_py, syllables = surname_pinyin(family), lazy_pinyin(given)
            style = self.rng.randrange(3)
            if style == 0:
                return PersonName(family_py.upper(), "".join(syllables).upper(), representation="P")
            if style == 1:
                return PersonName(family_py.title(), " ".join(s.title() for s in syllables), representation="P")
            return PersonName(family_py.title(), "".join(syllables).title(), representation="P")
        if draw < 0.17:
            converted = self.s2t.convert(family + given)
            if converted != family + given and len(converted) == len(family + given):
                kinds.append("traditional")
                return PersonName(converted[: len(family)], converted[len(family) :])
        elif draw < 0.22 and given:
            position = self.rng.randrange(len(given))
            others = [c for c in self.homophones.get(pinyin_of(given[position]), []) if c != given[position]]
            if others:
                kinds.append("homophone")
                given = given[:position] + self.rng.choice(others) + given[position + 1 :]
        return PersonName(family, given)

    def mother(self, name: tuple[str, str], kinds: list[str]) -> PersonName:
        """The mother's name as a clerk takes it down: now and then a wrong character in the given name."""
        family, given = name
        if self.rng.random() < 0.1 and given:
            kinds.append("mother_typo")
            position = self.rng.randrange(len(given))
            given = given[:position] + self.rng.choice(COMMON_CHARS) + given[position + 1 :]
        return PersonName(family, given)

    def birth(self, value: str, kinds: list[str]) -> str:
        draw = self.rng.random()
        if draw < 0.03:
            kinds.append("birth_missing")
            return ""
        if draw < 0.07:
            kinds.append("birth_shifted")
            return self.shift(value)
        if draw < 0.08:
            kinds.append("birth_year_only")
            return value[:4]
        return value

    def shift(self, value: str) -> str:
        year, month, day = value[:4], value[4:6], value[6:]
        how = self.rng.randrange(4)
        if how == 0 and int(day) <= 12 and day != month:
            return year + day + month
        if how == 1:
            return f"{int(year) + self.rng.choice((-1, 1))}{month}{day}"
        if how == 2:
            moved = date(int(year), int(month), int(day)) + timedelta(days=self.rng.choice((-1, 1)))
            return f"{moved:%Y%m%d}"
        position = self.rng.choice((2, 3, 5, 7))
        digit = self.rng.choice([d for d in "0123456789" if d != value[position]])
        return value[:position] + digit + value[position + 1 :]

    def phone(self, value: str, new: Callable[[], str], kinds: list[str]) -> str:
        draw = self.rng.random()
        if draw < 0.15:
            kinds.append("phone_changed")
            return new()
        if draw < 0.30:
            kinds.append("phone_missing")
            return ""
        return value

    def address(self, value: Address, new: Callable[[], Address], kinds: list[str]) -> Address | None:
        draw = self.rng.random()
        if draw < 0.10:
            kinds.append("address_changed")
            return new()
        if draw < 0.18:
            kinds.append("address_missing")
            return None
        return value

    def national_id(self, value: str, kinds: list[str]) -> str:
        draw = self.rng.random()
        if draw < 0.25:
            kinds.append("id_missing")
            return ""
        if draw < 0.28:
            kinds.append("id_typo")
            position = self.rng.randrange(17)
            following = value[position + 1]
            if self.rng.random() < 0.3 and position < 16 and following != value[position]:
                return value[:position] + following + value[position] + value[position + 2 :]
            digit = self.rng.choice([d for d in "0123456789" if d != value[position]])
            return value[:position] + digit + value[position + 1 :]
        if draw < 0.33 and "1900" <= value[6:10] <= "1999":
            kinds.append("id_legacy15")
            return value[:6] + value[8:17]
        return value
