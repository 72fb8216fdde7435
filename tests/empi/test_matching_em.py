"""EM estimation recovers sensible m and u from unlabelled records, from an uninformed start."""

from __future__ import annotations

from dataclasses import replace

import pytest

from profiles.empi.matching import Model, fit, load_model
from profiles.empi.matching.em import random_pairs
from profiles.empi.matching.synthetic import generate
from profiles.empi.standardize import standardize


@pytest.fixture(scope="module")
def records() -> list:  # type: ignore[type-arg]
    return [standardize(r) for r in generate(500, seed=11).records()]


def flat(model: Model) -> Model:
    """Every free level of every comparison equally likely for matches and non-matches,
    except that the first level is a little likelier for matches: EM needs to know which
    class is which, nothing more."""
    parameters = {}
    for comparison in model.comparisons:
        free = [level for level in comparison.levels if not level.fixed]
        if not free:
            continue
        share = 1.0 / len(free)
        parameters[comparison.name] = {
            level.name: (share * (1.5 if index == 0 else 1.0), share) for index, level in enumerate(free)
        }
    stripped = tuple(replace(c, frequencies=None) for c in model.comparisons)
    return replace(model, comparisons=stripped).with_parameters(parameters, 0.01)


def test_em_recovers_m_and_u(records: list) -> None:  # type: ignore[type-arg]
    start = flat(load_model())
    estimate = fit(start, records, sample=50_000)
    model = estimate.model
    nid, birth, sex = (model.comparison(name) for name in ("national_id", "birth_date", "sex"))
    # u comes from random pairs, a few of which are the same person in a set this small (1 in 500)
    assert nid.level("exact").m > 0.8 and nid.level("exact").u < 0.01 and nid.level("exact").weight > 6
    assert birth.level("exact").m > 0.75 and birth.level("exact").u < 0.01 and birth.level("exact").weight > 6
    assert 0.4 < sex.level("exact").u < 0.6 and sex.level("exact").m > 0.9
    for comparison in model.comparisons:
        first, last = comparison.levels[0], comparison.levels[-1]
        if not first.fixed and comparison.name != "twins":
            assert first.weight > 0 > last.weight, comparison.name
    assert 0 < estimate.match_share < 1 and estimate.iterations > 1
    assert 0 < model.prior < 0.01


def test_fixed_levels_and_structure_survive(records: list) -> None:  # type: ignore[type-arg]
    shipped = load_model()
    model = fit(shipped, records, sample=20_000).model
    for before, after in zip(shipped.comparisons, model.comparisons, strict=True):
        assert before.names == after.names and before.options == after.options
        for old, new in zip(before.levels, after.levels, strict=True):
            if old.fixed:
                assert (new.m, new.u) == (old.m, old.u)
    assert (model.upper, model.lower, model.blocking) == (shipped.upper, shipped.lower, shipped.blocking)


def test_term_frequencies_come_from_the_data(records: list) -> None:  # type: ignore[type-arg]
    model = fit(load_model(), records, sample=20_000, top_values=20).model
    family = model.comparison("family").frequencies
    assert family is not None and len(family.values) == 20
    commonest = max(family.values, key=family.values.__getitem__)
    assert commonest in ("wang", "li", "zhang", "liu", "chen")  # the commonest surnames in China
    assert family.default < min(family.values.values())
    assert sum(family.values.values()) < 1


def test_random_pairs_are_distinct_records_and_seeded() -> None:
    pairs = random_pairs(1000, 50, seed=3)
    assert len(pairs) == 1000 and all(i < j for i, j in pairs)
    assert pairs == random_pairs(1000, 50, seed=3)
    assert random_pairs(10, 1, seed=3) == []
