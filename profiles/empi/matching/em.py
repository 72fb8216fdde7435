"""Estimating m and u from unlabelled records (Fellegi-Sunter with EM).

``u`` (how often a level occurs between different persons) comes from
random pairs, where almost every pair is two persons. ``m`` (how often it
occurs for one person) comes from expectation-maximisation over the blocked
candidate pairs, where matches are frequent enough to be seen; inside EM the
non-match side is re-estimated too, because blocked non-matches agree more
often than random ones on the fields they were blocked on. Splink does much
the same; it is written here, a hundred lines over numpy, because the levels,
term frequencies and fixed policy levels are this model's, and pulling in
Splink and DuckDB for EM alone would mean translating them back and forth.
The pairs collapse to their distinct level patterns, so an iteration is cheap.

A ``fixed`` level (policy, such as twins) keeps its m and u; the free levels
of its comparison are estimated among the pairs that are not at a fixed level.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from profiles.empi.matching.batch import candidate_pairs
from profiles.empi.matching.comparators import KINDS
from profiles.empi.matching.matcher import Features, Matcher
from profiles.empi.matching.model import ESTIMATE_FLOOR, FLOOR, Model, TermFrequencies
from profiles.empi.model import PatientRecord

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
#: added to every level's count: a level never seen among n pairs has a share of about 1/n,
#: not zero, so no weight is larger than the sample can support (about +-18 for 300,000 pairs)
PSEUDO_COUNT = 1.0


@dataclass
class Estimate:
    """The estimated model and how EM went."""

    model: Model
    iterations: int
    match_share: float
    pairs: int
    random_pairs: int


def _level_matrix(
    matcher: Matcher, features: Sequence[Features], pairs: Sequence[tuple[int, int]]
) -> npt.NDArray[np.int8]:
    levels = matcher.levels
    rows = [levels(features[i], features[j]) for i, j in pairs]
    return np.array(rows, dtype=np.int8).reshape(len(rows), len(matcher.model.comparisons))


def _frequencies(column: npt.NDArray[np.int8], weights: FloatArray, fixed: npt.NDArray[np.bool_]) -> FloatArray:
    """Weighted share of each free level among the pairs at a free level (fixed levels get 0)."""
    size = len(fixed)
    known = column >= 0
    counts = np.bincount(column[known], weights=weights[known], minlength=size).astype(np.float64)
    counts[fixed] = 0.0
    free = int((~fixed).sum())
    total = counts.sum()
    if total <= 0 or not free:
        return np.where(fixed, 0.0, 1.0 / max(free, 1))
    shares = (counts + PSEUDO_COUNT) / (total + PSEUDO_COUNT * free)
    return np.where(fixed, 0.0, np.clip(shares, ESTIMATE_FLOOR, 1.0))


def term_frequencies(model: Model, features: Sequence[Features], top: int) -> dict[str, TermFrequencies]:
    """The ``top`` commonest values of each comparison that asks for term frequencies; the tail in ``default``."""
    out: dict[str, TermFrequencies] = {}
    for k, comparison in enumerate(model.comparisons):
        key = KINDS[comparison.kind].tf_key
        if comparison.frequencies is None or key is None:
            continue
        counts = Counter(value for value in (key(f[k]) for f in features if f[k] is not None) if value)
        total = sum(counts.values())
        if not total:
            continue
        common = counts.most_common(top)
        tail = sorted((c / total for c in counts.values()), reverse=True)[len(common) :]
        default = sum(f * f for f in tail) / sum(tail) if tail else 1.0 / total
        values = {value: count / total for value, count in common}
        out[comparison.name] = TermFrequencies(comparison.frequencies.levels, values, default)
    return out


def random_pairs(count: int, size: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    out: list[tuple[int, int]] = []
    while len(out) < count and size > 1:
        i, j = rng.randrange(size), rng.randrange(size)
        if i != j:
            out.append((min(i, j), max(i, j)))
    return out


def estimate(model: Model, records: Sequence[PatientRecord], **options: Any) -> Model:
    """``model`` with m and u estimated on standardized ``records`` (see :func:`fit` for the options)."""
    return fit(model, records, **options).model


def fit(
    model: Model,
    records: Sequence[PatientRecord],
    *,
    sample: int = 300_000,
    max_block: int = 200,
    iterations: int = 100,
    tolerance: float = 1e-6,
    seed: int = 0,
    top_values: int = 300,
) -> Estimate:
    """Re-estimate m and u of ``model`` on standardized ``records``; the model's m seed EM."""
    matcher = Matcher(model)
    features = [matcher.features(r) for r in records]
    comparisons = model.comparisons
    fixed = [np.array([level.fixed for level in c.levels]) for c in comparisons]

    sampled = random_pairs(sample, len(records), seed)
    random_levels = _level_matrix(matcher, features, sampled)
    ones = np.ones(len(sampled))
    u_random = [_frequencies(random_levels[:, k], ones, fixed[k]) for k in range(len(comparisons))]

    blocked = candidate_pairs([matcher.blocking_keys(r) for r in records], max_block=max_block).pairs
    patterns, counts = np.unique(_level_matrix(matcher, features, blocked), axis=0, return_counts=True)
    counts = counts.astype(np.float64)

    # Fixed levels keep the model's m and u throughout; free ones start from the model's m.
    m = [np.clip(np.array([lv.m for lv in c.levels]), FLOOR, 1.0) for c in comparisons]
    u_blocked = [np.where(fixed[k], [lv.u for lv in c.levels], u_random[k]) for k, c in enumerate(comparisons)]
    share = 0.1
    done = 0
    for iteration in range(1, iterations + 1):
        done = iteration
        log_odds = np.full(len(patterns), np.log(share / (1 - share)))
        for k in range(len(comparisons)):
            column = patterns[:, k]
            known = column >= 0
            ratio = np.log(np.maximum(m[k], FLOOR) / np.maximum(u_blocked[k], FLOOR))
            log_odds[known] += ratio[column[known]]
        posterior = 1.0 / (1.0 + np.exp(-np.clip(log_odds, -700, 700)))
        new_share = float(np.clip((posterior * counts).sum() / counts.sum(), 1e-9, 1 - 1e-9))
        change = abs(new_share - share)
        share = new_share
        for k in range(len(comparisons)):
            if fixed[k].all():
                continue
            free = ~fixed[k]
            new_m = _frequencies(patterns[:, k], posterior * counts, fixed[k])
            new_u = _frequencies(patterns[:, k], (1 - posterior) * counts, fixed[k])
            change = max(change, float(np.abs(new_m[free] - m[k][free]).max()))
            m[k] = np.where(free, new_m, m[k])
            u_blocked[k] = np.where(free, new_u, u_blocked[k])
        if change < tolerance:
            break
    log.debug("EM: %d iterations, match share %.4f over %d blocked pairs", done, share, len(blocked))

    parameters = {
        c.name: {lv.name: (float(m[k][i]), float(u_random[k][i])) for i, lv in enumerate(c.levels) if not lv.fixed}
        for k, c in enumerate(comparisons)
    }
    total = len(records) * (len(records) - 1) / 2
    prior = min(max(share * len(blocked) / total, 1e-12), 0.5) if total else model.prior
    frequencies = term_frequencies(model, features, top_values)
    return Estimate(model.with_parameters(parameters, prior, frequencies), done, share, len(blocked), len(sampled))
