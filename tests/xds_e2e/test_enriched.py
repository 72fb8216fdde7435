"""docs/examples/xds-registry-enriched.yaml in place of routes/xds-registry.yaml: content-based routing and XSLT.

An ITI-42 whose SubmissionSet names an intendedRecipient has that slot copied
onto each DocumentEntry (``urn:esb:intendedRecipient``) on its way to the
registry; any other submission, and every stored query, passes unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from profiles.xds import ebxml
from tests.xds import samples
from tests.xds_e2e.harness import ROOT, SHIPPED_ROUTES, RunningEngine, running_engine
from tests.xds_e2e.zeep_xds import XdsClient, find_documents, identifier, of_kind, ok, slot, unique_ids

EXAMPLE = ROOT / "docs" / "examples" / "xds-registry-enriched.yaml"
RECIPIENTS = ["Some Hospital^^^^^^^^^1.2.3.9|^Welby^Marcus^^^Dr^MD", "|^Peirce^Charles^^^Dr"]
COPIED = "urn:esb:intendedRecipient"


@pytest.fixture(scope="module")
def xds(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """The example route (loaded where it is, so its XSLT path resolves) and the shipped repository route."""
    routes = [EXAMPLE, *(r for r in SHIPPED_ROUTES if r.stem != "xds-registry")]
    with running_engine(tmp_path_factory.mktemp("engine"), module_db_url, routes) as running:
        assert sorted(running.engine.routes) == ["hl7-in", "xds-registry-enriched", "xds-repository"]
        yield running


def stored_entries(client: XdsClient, pid: str) -> dict[str, Any]:
    answer = find_documents(client, pid)
    return {identifier(e, ebxml.DE_UNIQUE_ID): e for e in of_kind(answer, "ExtrinsicObject")}


def slots(entry: Any) -> dict[str, list[str]]:
    value = ebxml.q("rim", "Value")
    return {s.get("name"): [v.text for v in s.iter(value)] for s in entry.iter(ebxml.q("rim", "Slot"))}


def test_intended_recipient_is_copied_onto_every_document_entry(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    submit = samples.submission(pid, documents=2, ss={"extra_slots": {"intendedRecipient": RECIPIENTS}})
    ok(client.register(submit))
    entries = stored_entries(client, pid)
    assert sorted(entries) == sorted(unique_ids(submit))
    for doc_id, uid in zip(("Document01", "Document02"), unique_ids(submit), strict=True):
        sent = slots(samples.find(submit, doc_id))
        assert slot(entries[uid], COPIED) == RECIPIENTS
        assert slots(entries[uid]) == {**sent, COPIED: RECIPIENTS}  # nothing else changed


def test_without_intended_recipient_the_submission_passes_unchanged(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    submit = samples.submission(pid)
    ok(client.register(submit))
    [entry] = stored_entries(client, pid).values()
    assert slot(entry, COPIED) is None
    assert slots(entry) == slots(samples.find(submit, "Document01"))
