"""``esb xds ...`` against a registry filled through ITI-42 (Registry.register), on both databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from esb.journal import database
from profiles.xds import ebxml
from profiles.xds.config import XdsConfig
from profiles.xds.registry.register import Registry
from tests.cli.conftest import Cli
from tests.xds import samples


@pytest.fixture
def filled(db_url: str, make_cli: Callable[[str], Cli]) -> tuple[Cli, str, list[str], str]:
    """Two documents and a folder for one patient; returns (cli, patient, document uniqueIds, submission uniqueId)."""
    engine = database.make_engine(db_url)
    try:
        database.upgrade(engine)
        patient = samples.add_patient(engine)
        request = samples.submission(patient, documents=2, folder=True)
        answer = Registry(engine, XdsConfig(), samples.MASTER_OID).register(request)
        assert answer.get("status") == ebxml.SUCCESS
    finally:
        engine.dispose()
    documents = [samples.unique_id_of(samples.find(request, f"Document0{n}")) for n in (1, 2)]
    return make_cli(db_url), patient, documents, samples.unique_id_of(samples.find(request, "SubmissionSet01"))


def test_find_lists_the_patients_documents(filled: tuple[Cli, str, list[str], str]) -> None:
    cli, patient, documents, _ = filled
    rows = cli.json("xds", "find", patient)
    assert sorted(r["unique_id"] for r in rows) == sorted(documents)
    assert {r["status"] for r in rows} == {"Approved"}
    assert all(r["mime_type"] and r["entry_uuid"].startswith("urn:uuid:") for r in rows)
    assert cli.json("xds", "find", samples.patient_cx("someone-else")) == []


def test_find_refuses_a_patient_id_of_the_wrong_shape(filled: tuple[Cli, str, list[str], str]) -> None:
    cli = filled[0]
    result = cli("xds", "find", "12345")
    assert result.exit_code == 2
    assert "is not an XDS patient ID" in result.output


def test_show_lists_the_submission_members(filled: tuple[Cli, str, list[str], str]) -> None:
    cli, patient, documents, submission = filled
    shown = cli.json("xds", "show", submission)
    assert shown["unique_id"] == submission and shown["patient_id"] == patient
    kinds = sorted(m["kind"] for m in shown["members"])
    assert kinds.count("document") == 2 and "folder" in kinds
    assert {m["unique_id"] for m in shown["members"] if m["kind"] == "document"} == set(documents)
    missing = cli("xds", "show", "1.2.3.4.5")
    assert missing.exit_code == 1 and "no submission set '1.2.3.4.5'" in missing.output


def test_deprecate_then_count(filled: tuple[Cli, str, list[str], str]) -> None:
    cli, patient, documents, _ = filled
    result = cli("xds", "deprecate", documents[0], "--yes")
    assert result.exit_code == 0, result.output
    assert [r["unique_id"] for r in cli.json("xds", "find", patient)] == [documents[1]]
    deprecated = cli.json("xds", "find", patient, "--status", "deprecated")
    assert [r["unique_id"] for r in deprecated] == [documents[0]]
    counts = {(r["kind"], r["status"]): r["count"] for r in cli.json("xds", "count")}
    assert counts[("document", "Approved")] == 1
    assert counts[("document", "Deprecated")] == 1
    assert counts[("folder", "Approved")] == 1
    again = cli("xds", "deprecate", documents[0], "--yes")
    assert again.exit_code == 1


def test_xds_write_can_be_denied(filled: tuple[Cli, str, list[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    cli, _, documents, _ = filled
    monkeypatch.setenv("ESB_ADMIN_DENY", "xds.write")
    result = cli("xds", "deprecate", documents[0], "--yes")
    assert result.exit_code == 1 and "may not xds.write" in result.output
