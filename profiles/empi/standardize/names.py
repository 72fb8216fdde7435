"""Person names: one comparable form for 張三, 张 三, ＺＨＡＮＧ^ＳＡＮ and zhang san.

Two keys come out of a name: the name itself in one script (simplified hanzi, or
upper-case ASCII for Latin letters) and its toneless pinyin, which is what lets
a hanzi name from the HIS meet the pinyin a modality or a foreign system wrote.
Everything here runs per ADT message, so the converters are built once and the
results of the pure per-string functions are cached: surnames and given names
repeat a lot in a region.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import opencc
from pypinyin import lazy_pinyin

from profiles.empi.model import PersonName
from profiles.empi.standardize.surnames import COMPOUND, SINGLE, compound_prefix

_CACHE = 1 << 16
_T2S = opencc.OpenCC("t2s")
_HANZI = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_SPACE = re.compile(r"\s+")
#: the middle dots of minority names (买买提·艾力) written in any of their look-alikes
_DOTS = str.maketrans(dict.fromkeys("・•‧∙⋅.", "·"))
#: Latin letters that NFKD does not decompose into a base letter plus accents; the handful a
#: patient name can carry, so a transliteration library (anyascii, unidecode) is not worth a dependency
_LATIN_EXTRA = str.maketrans(
    {"ß": "ss", "ẞ": "SS", "Æ": "AE", "æ": "ae", "Ø": "O", "ø": "o", "Œ": "OE", "œ": "oe"}
    | {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Þ": "TH", "þ": "th", "ı": "i"}
)
#: pinyin ü as foreign systems write it: ü, u: and v are the same letter (pypinyin writes lv, nv)
_UMLAUT = str.maketrans(dict.fromkeys("üÜǖǘǚǜǕǗǙǛ", "v"))
_DROP = re.compile(r"['’`´.]")
_NOT_LETTER = re.compile(r"[^A-Z]+")
_NOT_PINYIN = re.compile(r"[^a-z]+")
#: the passport spelling of lü (LYU) folded to pypinyin's lv; safe because no syllable ends in l
#: (nü -> NYU is left alone: "xinyu" is xin+yu)
_LYU = re.compile(r"lyu")


def has_hanzi(text: str) -> bool:
    return _HANZI.search(text) is not None


def simplified(text: str) -> str:
    """Traditional characters as simplified ones (張 -> 张), with OpenCC's phrase-aware t2s."""
    return str(_T2S.convert(text))


@lru_cache(maxsize=_CACHE)
def clean(text: str) -> str:
    """Full-width forms folded, whitespace removed inside hanzi and collapsed elsewhere; script kept.

    This is what the stored record keeps: a name's script and spelling are the
    patient's, only the typing accidents go.
    """
    text = unicodedata.normalize("NFKC", text).strip()
    if has_hanzi(text):
        # composed again once the spaces are out: NFKC turns a spacing accent (U+00B4) into a space and a
        # combining one, which then joins the letter before it; cleaning twice must change nothing
        return unicodedata.normalize("NFC", _SPACE.sub("", text).translate(_DOTS))
    return _SPACE.sub(" ", text)


@lru_cache(maxsize=_CACHE)
def normalize(text: str) -> str:
    """Simplified hanzi for a hanzi name; upper-case ASCII letters without accents or punctuation otherwise."""
    text = clean(text)
    if has_hanzi(text):
        return simplified(text).upper()
    return fold_latin(text)


def fold_latin(text: str) -> str:
    text = _DROP.sub("", unicodedata.normalize("NFKD", text.translate(_LATIN_EXTRA)))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    return _NOT_LETTER.sub(" ", text).strip()


@lru_cache(maxsize=_CACHE)
def pinyin(text: str, *, surname: bool = False) -> str:
    """Lower-case toneless pinyin without separators; Latin letters are taken as pinyin already.

    ``surname`` reads the characters as a family name: compound surnames and
    polyphonic surnames from :mod:`.surnames`, pypinyin for the rest.
    """
    text = clean(text)
    if not has_hanzi(text):
        text = text.translate(_UMLAUT).replace("u:", "v").replace("U:", "v")
        return _LYU.sub("lv", _NOT_PINYIN.sub("", fold_latin(text).lower()))
    text = simplified(text)
    if not surname or "·" in text:
        return _NOT_PINYIN.sub("", "".join(lazy_pinyin(text)).lower())
    parts: list[str] = []
    rest = text
    while rest:
        prefix = compound_prefix(rest)
        if prefix:
            parts.append(COMPOUND[prefix])
            rest = rest[len(prefix) :]
            continue
        parts.append(SINGLE.get(rest[0]) or "".join(lazy_pinyin(rest[0])))
        rest = rest[1:]
    return _NOT_PINYIN.sub("", "".join(parts).lower())


def split_full(text: str) -> tuple[str, str]:
    """A whole name written in one field, split into family and given name, Chinese order.

    Hanzi: a compound surname when the name starts with one, else the first
    character; a minority name with a middle dot is not split. Latin: at ``^``,
    then a comma (``ZHANG, SANFENG``), then the first space.
    """
    text = clean(text)
    if has_hanzi(text):
        if "·" in text or len(text) < 2:
            return text, ""
        simple = simplified(text)
        if len(simple) != len(text):
            text = simple
        prefix = compound_prefix(simple)
        if prefix and len(text) == len(prefix):
            return text, ""
        cut = len(prefix) or 1
        return text[:cut], text[cut:]
    for separator in ("^", ",", " "):
        if separator in text:
            family, _, given = text.partition(separator)
            return family.strip(), given.strip()
    return text, ""


@dataclass(frozen=True)
class NameKeys:
    """What matching compares of one name (see the ``derived`` contract in the package docstring)."""

    family: str = ""
    given: str = ""
    family_pinyin: str = ""
    given_pinyin: str = ""
    is_hanzi: bool = False


@lru_cache(maxsize=_CACHE)
def keys(family: str, given: str) -> NameKeys:
    """The keys of a family/given pair; a whole name in either field alone is split first."""
    family, given = clean(family), clean(given)
    if bool(family) != bool(given):
        family, given = split_full(family or given)
    return NameKeys(
        family=normalize(family),
        given=normalize(given),
        family_pinyin=pinyin(family, surname=True),
        given_pinyin=pinyin(given),
        is_hanzi=has_hanzi(family + given),
    )


def pick(names: tuple[PersonName, ...]) -> PersonName:
    """The name to match on: a legal name, preferring its ideographic (hanzi) representation.

    A Chinese source sends one person's name in several representations (PID-5
    repetitions, DICOM PN groups); the hanzi one carries the most information
    and its pinyin is derived, so it wins over a pinyin spelling of itself.
    """
    filled = [n for n in names if not n.is_empty()]
    legal = [n for n in filled if n.use in ("L", "")] or filled
    for name in legal:
        if name.representation == "I" or has_hanzi(name.family + name.given):
            return name
    return legal[0] if legal else PersonName()


def clean_name(name: PersonName) -> PersonName:
    """The stored form of a name: :func:`clean` on every part, nothing else changed."""
    return PersonName(
        family=clean(name.family),
        given=clean(name.given),
        middle=clean(name.middle),
        prefix=clean(name.prefix),
        suffix=clean(name.suffix),
        use=name.use,
        representation=name.representation,
    )


_REPRESENTATIONS = ("A", "I", "P")


def parse_dicom_pn(value: str) -> tuple[PersonName, ...]:
    """A DICOM PN (``Zhang^San=张^三=zhang^san``) as one PersonName per non-empty group.

    Groups are alphabetic, ideographic and phonetic (PS3.5 6.2.1), each with up
    to five ``^`` components: family, given, middle, prefix, suffix.
    """
    names: list[PersonName] = []
    for representation, group in zip(_REPRESENTATIONS, value.split("=")[:3], strict=False):
        parts = [*group.split("^")[:5], "", "", "", "", ""]
        name = PersonName(
            family=parts[0].strip(),
            given=parts[1].strip(),
            middle=parts[2].strip(),
            prefix=parts[3].strip(),
            suffix=parts[4].strip(),
            representation=representation,
        )
        if not name.is_empty():
            names.append(name)
    return tuple(names)
