"""What every comparator kind is made of, and the string helpers the kinds share.

A kind turns a record into one prepared value per comparison (``None`` when
the record lacks the field, which makes the pair score 0 for it) and offers
named tests over two prepared values; a level names its test and, for some,
a parameter (``min`` similarity, ``max`` distance, ``length``). Preparing
once per record and comparing tuples keeps a pair's score to a few
microseconds, which the batch linker needs for 100,000 records. The string
metrics are rapidfuzz's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from rapidfuzz.distance import JaroWinkler, Levenshtein

from profiles.empi.model import PatientRecord

TestFn = Callable[[Any, Any, Any], bool]
Prepare = Callable[[PatientRecord, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Option:
    """A setting of a comparison (``field: given``); ``kind`` is str, int or fields (a list of names)."""

    name: str
    kind: str = "str"
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class Test:
    """A level test; ``param`` names the level key holding its parameter, if it takes one."""

    fn: TestFn
    param: str = ""
    default: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class Kind:
    name: str
    prepare: Prepare
    tests: Mapping[str, Test]
    options: tuple[Option, ...] = field(default_factory=tuple)
    #: the value whose frequency adjusts u (term frequencies), for kinds that allow it
    tf_key: Callable[[Any], str] | None = None


def always(a: Any, b: Any, p: Any) -> bool:
    return True


def near(a: str, b: str) -> bool:
    """One character wrong, or two neighbours swapped: the usual keying slips in a number."""
    if len(a) != len(b) or a == b:
        return False
    first = -1
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x == y:
            continue
        if first < 0:
            first = i
        elif i == first + 1 and a[first] == y and x == b[first]:
            return a[i + 1 :] == b[i + 1 :]
        else:
            return False
    return True


def jaro_winkler(a: str, b: str, minimum: float) -> bool:
    return bool(a and b) and JaroWinkler.normalized_similarity(a, b, score_cutoff=minimum) >= minimum


def levenshtein(a: str, b: str, maximum: int) -> bool:
    return bool(a and b) and Levenshtein.distance(a, b, score_cutoff=maximum) <= maximum


def is_prefix(a: str, b: str, min_length: int) -> bool:
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return len(short) >= min_length and short != long and long.startswith(short)


@cache
def pattern(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


def placeholder(options: Mapping[str, Any], value: str, pinyin: str) -> bool:
    """A stand-in such as 王芳之女 or 宝宝 (a newborn not yet named) says nothing about the name."""
    text = options.get("placeholder")
    return bool(text) and bool(pattern(text).search(value) or pattern(text).search(pinyin))
