"""The matching model as data: blocking rules, comparisons with levels, thresholds.

A model is what a deployment configures (A1.7, A1.20) and what EM estimation
rewrites: plain frozen values with no behaviour beyond the Fellegi-Sunter
arithmetic, so the YAML file, the estimator and the matcher all agree on one
shape. Comparators (what a level *tests*) live in :mod:`.comparators`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

#: m and u are read as at least FLOOR so no weight is infinite (a fixed level may go this low)
FLOOR = 1e-30
#: estimated m and u are kept at least this large: a level never seen is rare, not impossible
ESTIMATE_FLOOR = 1e-9


@dataclass(frozen=True)
class Level:
    """One outcome of a comparison, tried in order: the first whose test holds is the level.

    ``m`` is P(level | same person), ``u`` P(level | different persons); the
    level's match weight is ``log2(m / u)``. A ``fixed`` level is policy, not
    statistics (e.g. twins): estimation leaves its m and u alone.
    """

    name: str
    test: str
    m: float
    u: float
    param: float | None = None
    fixed: bool = False

    @property
    def weight(self) -> float:
        return math.log2(max(self.m, FLOOR) / max(self.u, FLOOR))


@dataclass(frozen=True)
class TermFrequencies:
    """How common each value is, so 王伟 agreeing weighs less than 欧阳修 agreeing.

    For the listed ``levels`` the u of a pair is the frequency of its value
    (the chance that a random other record has it) instead of the level's
    average u; values not listed (the long tail) use ``default``, which is
    what the tail contributes to u: sum of f squared over sum of f.
    """

    levels: tuple[str, ...]
    values: Mapping[str, float]
    default: float

    def u(self, value: str) -> float:
        return self.values.get(value, self.default)


@dataclass(frozen=True)
class Comparison:
    """A field (or a few) compared by one comparator kind; levels end with an ``else`` level.

    ``options`` are the kind's settings (which derived field, the identifier
    domain, ...); a pair where either side lacks the field scores 0 for it.
    """

    name: str
    kind: str
    levels: tuple[Level, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    frequencies: TermFrequencies | None = None

    def level(self, name: str) -> Level:
        for level in self.levels:
            if level.name == name:
                return level
        raise KeyError(f"comparison '{self.name}' has no level '{name}' (has: {', '.join(self.names)})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)


@dataclass(frozen=True)
class KeyPart:
    """One part of a blocking key: a derived field, optionally through a function (``soundex(family)``)."""

    field: str
    function: str = ""
    arg: int | None = None

    def __str__(self) -> str:
        if not self.function:
            return self.field
        return f"{self.function}({self.field}{'' if self.arg is None else f', {self.arg}'})"


@dataclass(frozen=True)
class BlockingRule:
    """Records that share all parts of a rule's key are candidate pairs; the name prefixes the key.

    ``unordered``: the parts' values are sorted before joining, so a name
    written given-name first files under the same key.
    """

    name: str
    parts: tuple[KeyPart, ...]
    unordered: bool = False


@dataclass(frozen=True)
class Model:
    """Blocking, comparisons and the decision thresholds on the summed match weight.

    ``weight >= upper``: link automatically; ``lower <= weight < upper``: a
    person reviews the pair; below ``lower``: a new person. ``prior`` is the
    probability that two random records are the same person; it only turns a
    weight into the probability shown next to it.
    """

    comparisons: tuple[Comparison, ...]
    blocking: tuple[BlockingRule, ...]
    upper: float
    lower: float
    prior: float = 1e-6
    description: str = ""
    #: a pair links automatically only if one of these comparisons agrees (positive weight);
    #: above the upper threshold without it, a person reviews it (names alone never link)
    link_requires: tuple[str, ...] = ()

    def comparison(self, name: str) -> Comparison:
        for comparison in self.comparisons:
            if comparison.name == name:
                return comparison
        raise KeyError(f"model has no comparison '{name}' (has: {', '.join(c.name for c in self.comparisons)})")

    def with_parameters(
        self,
        parameters: Mapping[str, Mapping[str, tuple[float, float]]],
        prior: float,
        frequencies: Mapping[str, TermFrequencies] | None = None,
    ) -> Model:
        """A copy with new (m, u) per comparison and level name, and new term frequencies; fixed levels stay."""
        comparisons = []
        for comparison in self.comparisons:
            new = parameters.get(comparison.name, {})
            levels = tuple(
                level
                if level.fixed or level.name not in new
                else replace(level, m=new[level.name][0], u=new[level.name][1])
                for level in comparison.levels
            )
            tf = (frequencies or {}).get(comparison.name, comparison.frequencies)
            comparisons.append(replace(comparison, levels=levels, frequencies=tf))
        return replace(self, comparisons=tuple(comparisons), prior=prior)

    @property
    def prior_weight(self) -> float:
        return math.log2(max(self.prior, FLOOR) / max(1 - self.prior, FLOOR))
