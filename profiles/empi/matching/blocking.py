"""Blocking keys: the strings under which a record is filed to find its candidates.

Scoring every pair of 1,000,000 patients is out of the question, so each
record gets a few keys (``nid:110101199003071234``, ``fby:zhang|1990``) that
the store indexes in a table; the candidates of a new record are the
records sharing at least one key. Keys are plain, stable strings (rule name,
colon, parts joined by ``|``) so they survive a restart and can be rebuilt
in SQL. A field holding several values (phones) yields one key per value;
``identifier(DOMAIN)`` reads the record's identifiers in that domain.
The phonetic codes come from jellyfish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import product
from typing import Any

import jellyfish

from profiles.empi.matching.model import BlockingRule, KeyPart
from profiles.empi.model import PatientRecord


def _ascii(value: str) -> str:
    return value if value.isascii() else ""


#: name -> (function, whether it takes a length argument)
FUNCTIONS: dict[str, tuple[Callable[[str, int], str], bool]] = {
    "first": (lambda value, n: value[:n], True),
    "last": (lambda value, n: value[-n:], True),
    "soundex": (lambda value, n: jellyfish.soundex(_ascii(value)) if _ascii(value) else "", False),
    "metaphone": (lambda value, n: jellyfish.metaphone(_ascii(value)) if _ascii(value) else "", False),
    "nysiis": (lambda value, n: jellyfish.nysiis(_ascii(value)) if _ascii(value) else "", False),
    "initials": (lambda value, n: "".join(word[0] for word in value.split()), False),
    "sorted": (lambda value, n: "".join(sorted(value.replace(" ", ""))), False),
    #: identifier(DOMAIN): the record's local IDs in that assigning authority (not a derived field)
    "identifier": (lambda value, n: value, False),
}


def _values(raw: Any) -> tuple[str, ...]:
    if raw is None or raw == "" or isinstance(raw, bool):
        return ()
    if isinstance(raw, list | tuple | set | frozenset):
        return tuple(sorted(str(v) for v in raw if v not in (None, "")))
    return (str(raw),)


def part_values(record: PatientRecord, part: KeyPart) -> tuple[str, ...]:
    if part.function == "identifier":
        domain = part.field
        return tuple(sorted({i.value for i in record.identifiers if domain in (i.domain.key, i.domain.namespace)}))
    values = _values(record.derived.get(part.field))
    if not part.function:
        return values
    function, _ = FUNCTIONS[part.function]
    out = (function(value, part.arg or 1) for value in values)
    return tuple(v for v in out if v)


def rule_keys(record: PatientRecord, rule: BlockingRule) -> Iterable[str]:
    """The keys of one rule; none when any part is empty (an empty part would block everyone together)."""
    values = [part_values(record, part) for part in rule.parts]
    if not all(values):
        return ()
    if rule.unordered:
        return (f"{rule.name}:{'|'.join(sorted(combo))}" for combo in product(*values))
    return (f"{rule.name}:{'|'.join(combo)}" for combo in product(*values))


def blocking_keys(record: PatientRecord, rules: Iterable[BlockingRule]) -> list[str]:
    keys: list[str] = []
    for rule in rules:
        for key in rule_keys(record, rule):
            if key not in keys:
                keys.append(key)
    return keys
