"""Scoring a pair of records with a model: Fellegi-Sunter match weights and a decision.

The same :class:`Matcher` serves the real-time feed (one new record against
the candidates the store found under its blocking keys), the batch linker
and EM estimation; only the model differs between deployments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from profiles.empi.matching.blocking import blocking_keys
from profiles.empi.matching.comparators import KINDS, Prepare, TestFn
from profiles.empi.matching.model import ESTIMATE_FLOOR, FLOOR, Comparison, Model
from profiles.empi.model import PatientRecord

Decision = Literal["link", "review", "new"]
#: the level shown for a comparison one side has no value for
MISSING = "missing"
#: features of one record: one prepared value per comparison of the model
Features = tuple[Any, ...]


class Evidence(NamedTuple):
    """What one comparison contributed: the review queue shows these side by side."""

    field: str
    level: str
    weight: float


@dataclass(frozen=True)
class MatchResult:
    weight: float
    probability: float
    decision: Decision
    evidence: tuple[Evidence, ...]


class _Compiled:
    """A comparison turned into callables, so scoring does no lookups by name.

    ``steps`` holds per level its test, parameter, weight and, for a level
    adjusted by term frequency, log2(m) (else None): its weight then depends
    on the value that agreed.
    """

    __slots__ = ("name", "prepare", "options", "steps", "names", "tf_key", "tf", "log_u", "log_default")

    def __init__(self, comparison: Comparison) -> None:
        kind = KINDS[comparison.kind]
        self.name = comparison.name
        self.prepare: Prepare = kind.prepare
        self.options = comparison.options
        self.names = comparison.names
        self.tf = comparison.frequencies
        self.tf_key = kind.tf_key
        values = self.tf.values if self.tf is not None else {}
        self.log_u = {key: math.log2(max(u, ESTIMATE_FLOOR)) for key, u in values.items()}
        self.log_default = math.log2(max(self.tf.default, ESTIMATE_FLOOR)) if self.tf is not None else 0.0
        adjusted = set(self.tf.levels) if self.tf is not None and self.tf_key is not None else set()
        self.steps: tuple[tuple[TestFn, Any, float, float | None], ...] = tuple(
            (
                kind.tests[level.test].fn,
                level.param,
                level.weight,
                math.log2(max(level.m, FLOOR)) if level.name in adjusted else None,
            )
            for level in comparison.levels
        )

    def weight(self, index: int, value: Any) -> float:
        _, _, weight, log_m = self.steps[index]
        if log_m is None or self.tf is None or self.tf_key is None:
            return weight
        return log_m - self.log_u.get(self.tf_key(value), self.log_default)


class Matcher:
    def __init__(self, model: Model) -> None:
        self.model = model
        self._compiled = tuple(_Compiled(c) for c in model.comparisons)
        self._prior_weight = model.prior_weight
        self._required = tuple(c.name in model.link_requires for c in model.comparisons)

    def blocking_keys(self, record: PatientRecord) -> list[str]:
        """The keys the store files ``record`` under; candidates share at least one."""
        return blocking_keys(record, self.model.blocking)

    def features(self, record: PatientRecord) -> Features:
        return tuple(c.prepare(record, c.options) for c in self._compiled)

    def levels(self, fa: Features, fb: Features) -> list[int]:
        """The level index per comparison, -1 where either side has no value (for estimation)."""
        out: list[int] = []
        for compiled, va, vb in zip(self._compiled, fa, fb, strict=True):
            if va is None or vb is None:
                out.append(-1)
                continue
            for index, (test, param, _, _) in enumerate(compiled.steps):
                if test(va, vb, param):
                    out.append(index)
                    break
        return out

    def weight(self, fa: Features, fb: Features) -> float:
        """The summed match weight alone."""
        return self.weigh(fa, fb)[0]

    def weigh(self, fa: Features, fb: Features) -> tuple[float, bool]:
        """The summed match weight and whether a comparison of ``link_requires`` agreed: the batch hot path."""
        total = 0.0
        supported = not self.model.link_requires
        for compiled, required, va, vb in zip(self._compiled, self._required, fa, fb, strict=True):
            if va is None or vb is None:
                continue
            for index, (test, param, weight, log_m) in enumerate(compiled.steps):
                if test(va, vb, param):
                    if log_m is not None:
                        weight = compiled.weight(index, va)
                    total += weight
                    supported = supported or (required and weight > 0)
                    break
        return total, supported

    def decide(self, weight: float, supported: bool = True) -> Decision:
        """Link at or above the upper threshold if ``link_requires`` is met, review from the lower one."""
        if weight >= self.model.upper and supported:
            return "link"
        return "review" if weight >= self.model.lower else "new"

    def probability(self, weight: float) -> float:
        odds = weight + self._prior_weight
        return 1.0 / (1.0 + math.pow(2.0, -odds)) if odds > -1000 else 0.0

    def score_features(self, fa: Features, fb: Features) -> MatchResult:
        evidence: list[Evidence] = []
        weight = 0.0
        supported = not self.model.link_requires
        levels = self.levels(fa, fb)
        for compiled, required, index, va in zip(self._compiled, self._required, levels, fa, strict=True):
            if index < 0:
                evidence.append(Evidence(compiled.name, MISSING, 0.0))
            else:
                level_weight = compiled.weight(index, va)
                weight += level_weight
                supported = supported or (required and level_weight > 0)
                evidence.append(Evidence(compiled.name, compiled.names[index], round(level_weight, 3)))
        decision = self.decide(weight, supported)
        return MatchResult(round(weight, 3), self.probability(weight), decision, tuple(evidence))

    def score(self, a: PatientRecord, b: PatientRecord) -> MatchResult:
        """Weight, probability, decision and field-by-field evidence for one pair."""
        return self.score_features(self.features(a), self.features(b))

    def score_many(self, record: PatientRecord, candidates: Sequence[PatientRecord]) -> list[MatchResult]:
        """One record against its candidates (the feed's case), preparing the record once."""
        fa = self.features(record)
        return [self.score_features(fa, self.features(c)) for c in candidates]
