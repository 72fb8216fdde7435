"""``esb audit search|report|status`` against a database holding audit records; reading is audited."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result
from lxml import etree

import esb.audit as audit
import esb.cli.audit  # noqa: F401  (registers the commands until esb/cli/__init__.py imports it)
from esb.audit import xml
from esb.audit.store import AuditStore, Search
from esb.audit.trail import AuditTrail
from esb.cli import main_group
from tests.audit.samples import PATIENT, every_event


@pytest.fixture
def filled(store: AuditStore, trail: AuditTrail) -> AuditStore:
    for event in every_event().values():
        audit.emit(event)
    assert trail.flush()
    return store


def run(db_url: str, *args: str, **env: str) -> Result:
    return CliRunner().invoke(main_group, list(args), env={"ESB_DB_URL": db_url, "ESB_ACTOR": "auditor", **env})


def test_search_by_patient_as_json_and_the_search_is_itself_audited(filled: AuditStore, db_url: str) -> None:
    result = run(db_url, "audit", "search", "--patient", PATIENT, "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    expected = {name for name, ev in every_event().items() if PATIENT in ev.patient_ids}
    assert len(found) == len(expected) and all(PATIENT in row["patients"] for row in found)
    assert {row["event"] for row in found} >= {"Patient Record", "Query", "Import"}
    assert all(xml.problems(row["xml"]) == [] for row in found)
    [used], _ = filled.search(Search(event="audit-log-used", user="auditor"))
    assert used.source_node.startswith("cli-")
    assert PATIENT.encode() not in used.xml.encode()  # the filters are in a base64 detail
    assert "QueryParameters" in used.xml


def test_search_filters_table_and_xml_formats(filled: AuditStore, db_url: str) -> None:
    table = run(db_url, "audit", "search", "--user", "alice", "--event", "user-authentication")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["created_at", "event", "type", "action"]
    assert len(lines) == 4 and all("User Authentication" in line for line in lines[2:])
    failed = json.loads(run(db_url, "--json", "audit", "search", "--outcome", "minor", "--event", "110113").stdout)
    assert {row["outcome"] for row in failed} == {"minor failure"} and len(failed) == 4
    answer = run(db_url, "audit", "search", "--event", "ITI-8", "--format", "xml")
    root = etree.fromstring(answer.stdout.encode())
    assert root.tag == "AuditMessages" and root.get("count") == "2"
    assert all(xml.problems(etree.tostring(m)) == [] for m in root)
    nothing = run(db_url, "audit", "search", "--since", "1m", "--event", "ITI-41", "--until", "2000-01-01")
    assert nothing.exit_code == 0 and "(none)" in nothing.stdout


def test_report_counts_and_status(filled: AuditStore, db_url: str) -> None:
    result = run(db_url, "--json", "audit", "report", "--since", "1h")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # the report itself is recorded before it is made: its authorization decision and the Audit Log Used
    assert report["total"] == len(every_event()) + 2
    assert {row["event"]: row["count"] for row in report["by_event"] if row["type"] == "ITI-8"} == {"Patient Record": 2}
    assert {row["event"]: row["count"] for row in report["by_event"] if row["event_id"] == "110101"} == {
        "Audit Log Used": 2,  # the sample's and this report's
    }
    assert sum(row["count"] for row in report["by_outcome"]) == report["total"]
    nodes = {row["node"]: row["count"] for row in report["by_node"]}
    assert nodes.pop("test-node") == len(every_event()) and list(nodes.values()) == [2]
    text = run(db_url, "audit", "report")
    assert text.exit_code == 0 and "by user:" in text.stdout and "alice" in text.stdout
    status = json.loads(run(db_url, "--json", "audit", "status").stdout)
    # the samples, two records per report, the status's authorization: all unsent, no ARR configured
    assert status["unsent"] == status["records"] == len(every_event()) + 2 + 2 + 1
    assert status["repository"].startswith("(none") and status["last_error"] is None


def test_without_audit_read_nothing_is_shown(filled: AuditStore, db_url: str) -> None:
    result = run(db_url, "audit", "search", "--patient", PATIENT, ESB_ADMIN_DENY="audit.read")
    assert result.exit_code == 1
    assert "'auditor' may not audit.read" in result.stderr and PATIENT not in result.stdout
    assert filled.search(Search(event="audit-log-used", user="auditor"))[0] == []
    [refusal], _ = filled.search(Search(user="auditor"))  # esb.authz records the decision (issue 7 contract)
    assert (refusal.event_id, refusal.outcome) == ("110113", 4) and "audit.read" in refusal.xml
