"""The model file: every mistake is reported with its line and column, all at once; dump and parse agree."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from esb.errors import ConfigError, LintError
from profiles.empi.matching import DEFAULT_MODEL_FILE, dump_model, load_model, parse_model

GOOD = """\
matching:
  thresholds: {upper: 12, lower: 4}
  blocking:
  - {name: nid, key: [national_id]}
  - {name: sby, key: ['soundex(family_pinyin)', birth_year]}
  - {name: fg, key: [family_pinyin, given_pinyin], unordered: true}
  comparisons:
  - name: given
    kind: name
    field: given
    other: family
    levels:
    - {name: exact, m: 0.9, u: 0.001}
    - {name: jw, test: jaro_winkler, min: 0.92, m: 0.05, u: 0.01}
    - {name: else, m: 0.05, u: 0.989}
    term_frequency:
      levels: [exact]
      default: 0.0001
      values: {wei: 0.01}
  - name: twins
    kind: twins
    levels:
    - {name: birth_order, m: 1.0e-20, u: 1, fixed: true}
    - {name: else, m: 1, u: 1, fixed: true}
"""


def errors(text: str) -> list[str]:
    with pytest.raises(LintError) as caught:
        parse_model(textwrap.dedent(text), "matching.yaml")
    return [str(e) for e in caught.value.errors]


def test_a_good_model_reads_into_typed_values() -> None:
    model = parse_model(GOOD)
    assert (model.upper, model.lower) == (12.0, 4.0)
    assert [r.name for r in model.blocking] == ["nid", "sby", "fg"]
    assert str(model.blocking[1].parts[0]) == "soundex(family_pinyin)"
    assert model.blocking[2].unordered
    given = model.comparison("given")
    assert given.options["field"] == "given" and given.options["placeholder"] is None
    assert given.level("jw").param == 0.92
    assert given.frequencies is not None and given.frequencies.u("wei") == 0.01 and given.frequencies.u("x") == 1e-4
    assert model.comparison("twins").level("birth_order").fixed


def test_dump_and_parse_round_trip() -> None:
    for model in (parse_model(GOOD), load_model()):
        assert parse_model(dump_model(model)) == model


def test_the_shipped_models_load() -> None:
    model = load_model()
    assert model.lower < model.upper
    assert {c.name for c in model.comparisons} >= {"national_id", "family", "given", "birth_date", "twins"}
    assert load_model(DEFAULT_MODEL_FILE.parent / "matching" / "febrl.yaml").comparison("ssn").kind == "identifier"


def test_misspelt_keys_kinds_and_tests_name_their_position() -> None:
    found = errors(
        """\
        matching:
          thresholds: {upper: 12, lower: 4}
          blocking:
          - {name: nid, key: [national_id]}
          comparisons:
          - name: dob
            kind: date
            levles: []
          - name: nid
            kind: nationl_id
            levels: []
          - name: given
            kind: name
            field: given
            levels:
            - {name: sounds, m: 0.1, u: 0.1}
            - {name: else, m: 0.9, u: 0.9}
        """
    )
    assert found == [
        "matching.yaml:8:5: comparison: unknown key 'levles' (did you mean 'levels'?)",
        "matching.yaml:6:5: comparison: missing required key 'levels'",
        "matching.yaml:10:11: comparison kind must be one of name|string|date|national_id|phones|contact|identifier"
        "|twins (got 'nationl_id') (did you mean 'national_id'?)",
        "matching.yaml:16:14: comparison 'given': kind 'name' has no test 'sounds' (allowed: parent_of, placeholder, "
        "exact, pinyin, anagram, swapped, cross, prefix, jaro_winkler, levenshtein, else)",
    ]


def test_values_out_of_range_and_levels_out_of_order() -> None:
    found = errors(
        """\
        matching:
          thresholds: {upper: 4, lower: 10}
          prior: 2
          blocking:
          - {name: Bad, key: ['soundx(family)']}
          - {name: f1, key: ['first(family)']}
          comparisons:
          - name: given
            kind: name
            field: given
            placeholder: '(之子'
            levels:
            - {name: exact, m: 0.9, u: 1.5}
            - {name: jw, test: jaro_winkler, min: 2, m: 0.1, u: 0.1}
            - {name: else, m: 0.1, u: 0.9}
            - {name: prefix, m: 0.1, u: 0.9}
          - name: sex
            kind: string
            levels:
            - {name: else, m: 1, u: 1}
        """
    )
    assert found[:6] == [
        "matching.yaml:2:15: thresholds.lower (10) must not be above thresholds.upper (4)",
        "matching.yaml:3:10: prior must be a number from 0 to 1 (got '2')",
        "matching.yaml:5:12: blocking rule name must be lower-case letters, digits and _ (got 'Bad')",
        "matching.yaml:5:23: blocking rule 'Bad': unknown key function 'soundx' (allowed: first, last, soundex, "
        "metaphone, nysiis, initials, sorted, identifier)",
        "matching.yaml:6:22: blocking rule 'f1': first() takes a field and a length",
        "matching.yaml:11:18: comparison 'given': placeholder must be a regular expression "
        "(missing ), unterminated subpattern at position 0)",
    ]
    assert found[6:] == [
        "matching.yaml:13:32: comparison 'given': level 'exact': u must be a number from 0 to 1 (got '1.5')",
        "matching.yaml:14:43: comparison 'given': level 'jw': min must be a number from 0 to 1 (got '2')",
        "matching.yaml:15:7: comparison 'given': only the last level may be 'else' (got test 'else' at level 'else')",
        "matching.yaml:16:7: comparison 'given': the last level must be 'else' (got test 'prefix' at level 'prefix')",
        "matching.yaml:17:5: comparison 'sex': kind 'string' needs option 'fields'",
    ]


def test_duplicates_and_term_frequencies_that_cannot_be() -> None:
    found = errors(
        """\
        matching:
          thresholds: {upper: 12, lower: 4}
          blocking:
          - {name: nid, key: [national_id]}
          - {name: nid, key: [phones]}
          comparisons:
          - name: phone
            kind: phones
            levels:
            - {name: else, m: 1, u: 1}
            term_frequency: {levels: [else]}
          - name: sex
            kind: string
            fields: [sex]
            levels:
            - {name: exact, m: 0.9, u: 0.5}
            - {name: else, m: 0.1, u: 0.5}
            term_frequency: {levels: [exactly]}
          - name: sex
            kind: string
            fields: [sex]
            levels:
            - {name: else, m: 1, u: 1}
        """
    )
    assert found == [
        "matching.yaml:5:12: blocking rule 'nid' is defined twice",
        "matching.yaml:11:21: comparison 'phone': kind 'phones' has no term frequencies (kinds that do: name, string)",
        "matching.yaml:18:31: comparison 'sex': term_frequency names unknown level 'exactly' (levels: exact, else)",
        "matching.yaml:19:11: comparison 'sex' is defined twice",
    ]


def test_yaml_syntax_and_unreadable_files(tmp_path: Path) -> None:
    assert errors("matching: {thresholds: [\n") == [
        "matching.yaml:2:1: YAML syntax: expected the node content, but found '<stream end>' "
        "(while parsing a flow node at line 2, column 1)"
    ]
    assert errors("other: 1\n") == [
        "matching.yaml:1:1: matching model: unknown key 'other' (allowed: matching)",
        "matching.yaml:1:1: matching model: missing required key 'matching'",
    ]
    with pytest.raises(ConfigError, match="matching model '.*missing.yaml' cannot be read"):
        load_model(tmp_path / "missing.yaml")
