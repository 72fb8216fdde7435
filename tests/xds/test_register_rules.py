"""The metadata rule table, value formats, code-set files and the parser, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.errors import ConfigError, LintError
from profiles.xds import ebxml
from profiles.xds.registry import rules
from profiles.xds.registry.codesets import ANY, load_code_sets
from profiles.xds.registry.metadata import DocumentEntry, Folder, SubmissionSet, parse
from tests.xds import samples

PID = samples.patient_cx("p1")


@pytest.mark.parametrize("value", ["2004", "200412", "20041231", "2004123123", "200412312359", "20041231235959"])
def test_dtm_accepted(value: str) -> None:
    assert rules.is_dtm(value)


@pytest.mark.parametrize(
    "value", ["", "204", "20041", "20041301", "20040230", "2004123124", "20041231235960", "2004-12-31", "２００４"]
)
def test_dtm_refused(value: str) -> None:
    assert not rules.is_dtm(value)


def test_unique_id_formats() -> None:
    assert rules.is_oid("1.2.840.10008.1") and rules.is_oid(samples.new_oid())
    assert not rules.is_oid("1.02.3") and not rules.is_oid("3.1") and not rules.is_oid("1." + "1" * 64)
    assert rules.is_document_unique_id("1.2.3^ABC-123")
    assert not rules.is_document_unique_id("1.2.3^") and not rules.is_document_unique_id("1.2.3^" + "x" * 17)


def test_every_rule_is_well_formed() -> None:
    for table in (rules.DOCUMENT_ENTRY, rules.SUBMISSION_SET, rules.FOLDER):
        for rule in table:
            for cardinality in filter(None, (rule.cardinality, rule.on_demand)):
                assert cardinality in ("0", "1", "0..1", "1..*", "0..*"), rule
            assert rule.format is None or rule.format in rules.FORMATS, rule
            assert rule.part in ("slot", "code", "author", "external", "attribute", "name", "description"), rule


def test_valid_samples_break_no_rule() -> None:
    submission = parse(samples.submission(PID, documents=2, folder=True))
    assert not submission.problems
    for obj in submission.objects:
        assert rules.check(obj, ANY) == []
    on_demand = parse(samples.submission(PID, on_demand=True))
    assert [rules.check(o, ANY) for o in on_demand.documents] == [[]]


def test_patient_values_are_not_echoed() -> None:
    secret = "SECRET-ID"
    (doc,) = parse(samples.submission(secret, document={"source_patient_id": secret})).documents
    found = rules.check(doc, ANY)
    assert len(found) == 2 and all(secret not in e.text for e in found)


def test_parser_types_and_loose_parts() -> None:
    ss = samples.submission_set(PID, omit=["classification", "uniqueId"])
    loose = [
        samples.node_classification(ebxml.SUBMISSION_SET_NODE, "SubmissionSet01"),
        samples.external_identifier(ebxml.SS_UNIQUE_ID, "SubmissionSet01", "1.2.3", "XDSSubmissionSet.uniqueId"),
        samples.external_identifier(ebxml.SS_UNIQUE_ID, "Elsewhere", "1.2.4", "XDSSubmissionSet.uniqueId", id="x9"),
    ]
    submission = parse(samples.request(ss, samples.document_entry(PID), samples.folder(PID), *loose))
    assert [type(o) for o in submission.objects] == [SubmissionSet, DocumentEntry, Folder]
    assert submission.submission_sets[0].unique_id == "1.2.3"
    assert [p.text for p in submission.problems] == ["ExternalIdentifier x9 names Elsewhere, not in the submission"]
    assert parse(samples.slot("x", "y")).problems[0].text == "the request is not an lcm:SubmitObjectsRequest"


def test_code_set_file_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "codes.yaml"
    bad.write_text("code_sets:\n  classCode:\n    - {code: X}\n  colorCode: []\n", encoding="utf-8")
    with pytest.raises(LintError) as caught:
        load_code_sets(bad)
    text = str(caught.value)
    assert f"{bad}:3:7" in text and "missing required key 'scheme'" in text
    assert f"{bad}:4:3" in text and "unknown key 'colorCode'" in text
    with pytest.raises(ConfigError, match="does not exist"):
        load_code_sets(tmp_path / "absent.yaml")
    assert load_code_sets(None) is ANY


def test_code_set_membership(tmp_path: Path) -> None:
    path = tmp_path / "codes.yaml"
    path.write_text(
        "code_sets:\n  typeCode:\n    - {code: A, scheme: '1.2'}\n  mimeType: [text/xml]\n", encoding="utf-8"
    )
    sets = load_code_sets(path)
    assert sets.accepts("typeCode", "A", "1.2") and not sets.accepts("typeCode", "A", "1.3")
    assert sets.accepts("classCode", "anything", "any")
    assert sets.accepts_value("mimeType", "text/xml") and not sets.accepts_value("mimeType", "text/plain")
