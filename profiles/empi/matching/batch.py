"""The batch linker for historical bulk loads (A1.5): block in memory, score, union-find.

A bulk load of one hospital's history must not go record by record through
the store (a SQL candidate query per record); here all records are blocked
at once in a dict, every candidate pair is scored once with the same model
the feed uses, and the pairs above the upper threshold are joined into
clusters. Blocks larger than ``max_block`` (a key shared by too many
records, e.g. a placeholder phone) are skipped rather than scored
quadratically; their count is reported.

DuckDB or Splink would do the same join in SQL; in pure Python the whole
path stays one model and one code base, and it reaches the rate we need
(see docs/benchmarks.md), so no extra dependency.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from profiles.empi.matching.config import load_model
from profiles.empi.matching.matcher import Features, Matcher
from profiles.empi.matching.model import Model
from profiles.empi.model import PatientRecord

#: a pair scored below this is two persons for sure (twins, two valid resident IDs)
VETO = -10.0


@dataclass
class Candidates:
    """Candidate pairs as (i, j) with i < j, and how many oversized blocks were skipped."""

    pairs: list[tuple[int, int]]
    skipped_blocks: int = 0


def candidate_pairs(
    keys: Sequence[Iterable[str]], *, max_block: int = 1000, groups: Sequence[object] | None = None
) -> Candidates:
    """Pairs of records sharing a blocking key; with ``groups`` only pairs across groups (linking)."""
    blocks: dict[str, list[int]] = defaultdict(list)
    for index, record_keys in enumerate(keys):
        for key in record_keys:
            blocks[key].append(index)
    seen: set[int] = set()
    size = len(keys)
    skipped = 0
    for members in blocks.values():
        if len(members) < 2:
            continue
        if len(members) > max_block:
            skipped += 1
            continue
        for x, i in enumerate(members):
            for j in members[x + 1 :]:
                if groups is not None and groups[i] == groups[j]:
                    continue
                seen.add(i * size + j)
    return Candidates([divmod(code, size) for code in sorted(seen)], skipped)


class _Clusters:
    """Union-find that refuses to join two clusters holding a pair the model rules out.

    Linking is transitive: A-B and B-C put A and C together even when A-C
    scored as two persons (twins whose records both resemble a third, badly
    typed one). A pair scored below the ``veto`` weight is such a conflict;
    links are applied strongest first and one that would unite a conflict is
    skipped, so it is left to review instead.
    """

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))
        self.conflicts: dict[int, set[int]] = {}

    def find(self, item: int) -> int:
        parent = self.parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def forbid(self, a: int, b: int) -> None:
        self.conflicts.setdefault(a, set()).add(b)
        self.conflicts.setdefault(b, set()).add(a)

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        ca, cb = self.conflicts.get(ra, set()), self.conflicts.get(rb, set())
        small, other = (ca, rb) if len(ca) <= len(cb) else (cb, ra)
        if any(self.find(x) == other for x in small):
            return False
        keep, gone = min(ra, rb), max(ra, rb)
        self.parent[gone] = keep
        if ca or cb:
            self.conflicts[keep] = ca | cb
            self.conflicts.pop(gone, None)
        return True


@dataclass
class BatchResult:
    """Clusters of record indices (every record in exactly one), and the scored pairs by decision."""

    clusters: list[list[int]]
    links: list[tuple[int, int, float]] = field(default_factory=list)
    reviews: list[tuple[int, int, float]] = field(default_factory=list)
    #: links not applied because they would have joined a vetoed pair (for review)
    vetoed: list[tuple[int, int, float]] = field(default_factory=list)
    pairs_scored: int = 0
    skipped_blocks: int = 0

    def cluster_of(self) -> list[int]:
        """For each record, the index of its cluster."""
        out = [0] * sum(len(c) for c in self.clusters)
        for number, cluster in enumerate(self.clusters):
            for index in cluster:
                out[index] = number
        return out


def link_batch(
    records: Sequence[PatientRecord],
    model: Model | Matcher | None = None,
    *,
    max_block: int = 1000,
    groups: Sequence[object] | None = None,
    veto: float | None = VETO,
) -> BatchResult:
    """Cluster standardized ``records`` with ``model`` (default: the shipped one).

    Links are the pairs at or above the upper threshold, joined transitively
    unless that would join a pair scored below ``veto`` (None: always join).
    With ``groups`` (one label per record) only pairs across groups are
    considered: linking files that have no duplicates of their own.
    """
    if model is None:
        model = load_model()
    matcher = model if isinstance(model, Matcher) else Matcher(model)
    features: list[Features] = [matcher.features(r) for r in records]
    candidates = candidate_pairs([matcher.blocking_keys(r) for r in records], max_block=max_block, groups=groups)
    upper, lower = matcher.model.upper, matcher.model.lower
    result = BatchResult([], skipped_blocks=candidates.skipped_blocks, pairs_scored=len(candidates.pairs))
    weigh = matcher.weigh
    sets = _Clusters(len(records))
    for i, j in candidates.pairs:
        weight, supported = weigh(features[i], features[j])
        if weight >= upper and supported:
            result.links.append((i, j, weight))
        elif weight >= lower:
            result.reviews.append((i, j, weight))
        elif veto is not None and weight < veto:
            sets.forbid(i, j)
    for i, j, weight in sorted(result.links, key=lambda link: -link[2]):
        if not sets.union(i, j):
            result.vetoed.append((i, j, weight))
    clusters: dict[int, list[int]] = defaultdict(list)
    for index in range(len(records)):
        clusters[sets.find(index)].append(index)
    result.clusters = list(clusters.values())
    return result
