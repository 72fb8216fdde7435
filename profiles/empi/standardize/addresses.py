"""Addresses, lightly: a comparable postal code and city, the rest only cleaned.

Chinese addresses are free text of very uneven quality; parsing them into
province/city/district/street is a project of its own and matching gains
little from it. A postal code and a city are cheap, reliable blocking and
agreement keys, so those are what is derived.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from profiles.empi.model import Address
from profiles.empi.standardize.names import fold_latin, has_hanzi, simplified

_SPACE = re.compile(r"\s+")
_CN = frozenset({"", "CN", "CHN", "156", "CHINA", "中国", "中华人民共和国"})
_POSTAL_CN = re.compile(r"\d{6}")
_NOT_ALNUM = re.compile(r"[^0-9A-Z]+")
#: a trailing administrative word that one source writes and another omits (北京市/北京, Beijing Shi)
_CITY_SUFFIX_HANZI = "市"
_CITY_SUFFIX_LATIN = re.compile(r"\s+(?:CITY|SHI)$")


def _clean(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def clean(address: Address) -> Address:
    """The stored form: full-width forms folded and whitespace collapsed in every part."""
    return Address(
        street=_clean(address.street),
        other=_clean(address.other),
        city=_clean(address.city),
        state=_clean(address.state),
        postal_code=_NOT_ALNUM.sub("", _clean(address.postal_code).upper()),
        country=_clean(address.country),
        use=address.use,
    )


def is_china(country: str) -> bool:
    return _clean(country).upper() in _CN


def postal_code(code: str, country: str = "") -> str:
    """Digits and letters only; a Chinese postal code must be six digits, else ""."""
    code = _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", code).upper())
    if is_china(country):
        return code if _POSTAL_CN.fullmatch(code) else ""
    return code


@lru_cache(maxsize=1 << 14)
def city(name: str) -> str:
    """A comparable city: simplified hanzi without spaces or a trailing 市; Latin upper-case without CITY."""
    name = _clean(name)
    if has_hanzi(name):
        name = simplified(_SPACE.sub("", name))
        if name.endswith(_CITY_SUFFIX_HANZI) and len(name) > 2:
            name = name[:-1]
        return name
    return _CITY_SUFFIX_LATIN.sub("", fold_latin(name))


def primary(addresses: tuple[Address, ...]) -> Address:
    """The address to match on: the first home address with a city or postal code, else the first such."""
    filled = [a for a in addresses if a.city.strip() or a.postal_code.strip()]
    for address in filled:
        if address.use in ("H", ""):
            return address
    return filled[0] if filled else Address()
