"""Pairwise precision, recall and F1: how match quality is reported (benchmarks and tests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Pair = tuple[int, int]


@dataclass(frozen=True)
class PairQuality:
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def ordered(pairs: Iterable[tuple[int, int]]) -> set[Pair]:
    return {(a, b) if a < b else (b, a) for a, b in pairs}


def pair_quality(predicted: Iterable[tuple[int, int]], truth: set[Pair]) -> PairQuality:
    found = ordered(predicted)
    hits = len(found & truth)
    return PairQuality(hits, len(found) - hits, len(truth) - hits)


def cluster_pairs(clusters: Iterable[Sequence[int]]) -> set[Pair]:
    """Every pair inside a cluster: what linking a cluster transitively claims."""
    out: set[Pair] = set()
    for cluster in clusters:
        members = sorted(cluster)
        out.update((a, b) for x, a in enumerate(members) for b in members[x + 1 :])
    return out
