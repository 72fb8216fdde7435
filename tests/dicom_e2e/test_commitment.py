"""Acceptance, storage commitment with a real Evidence Creator: Orthanc sends a study, then asks the engine
whether it keeps it (Orthanc's storage commitment SCU, RAD-10); the engine's N-EVENT-REPORT comes back on
an association of its own and Orthanc reports the outcome in its REST API (/storage-commitment/{uid})."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.dicom_e2e.harness import Platform
from tests.dicom_e2e.test_orthanc import upload

WAIT = 60.0


def commitment(esb: Platform, instances: list[tuple[str, str]]) -> dict[str, Any]:
    """Orthanc asks the engine (its modality 'esb') for commitment; its report once it is not Pending."""
    body = {"DicomInstances": [{"SOPClassUID": c, "SOPInstanceUID": i} for c, i in instances]}
    started = esb.orthanc.session.post(f"{esb.orthanc.http_url}/modalities/esb/storage-commitment", json=body,
                                       timeout=30)  # fmt: skip
    started.raise_for_status()
    path = started.json()["Path"]
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        report: dict[str, Any] = esb.orthanc.session.get(f"{esb.orthanc.http_url}{path}", timeout=10).json()
        if report.get("Status") != "Pending":
            return report
        time.sleep(0.2)
    raise AssertionError(f"Orthanc's storage commitment {path} still pending after {WAIT:.0f} s")


def test_orthanc_sends_a_study_and_the_engine_commits_to_it(esb: Platform, tmp_path: Path) -> None:
    files = upload(esb, tmp_path / "study", (3, "CT_small.dcm"), patient_id="SC-ORTHANC")
    ids = [esb.orthanc.session.post(f"{esb.orthanc.http_url}/tools/lookup", data=str(dcmread(f).SOPInstanceUID),
                                    timeout=10).json()[0]["ID"] for f in files]  # fmt: skip
    sent = esb.orthanc.session.post(f"{esb.orthanc.http_url}/modalities/esb/store",
                                    json={"Resources": ids, "Synchronous": True}, timeout=120)  # fmt: skip
    sent.raise_for_status()
    instances = [(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in (dcmread(f) for f in files)]

    report = commitment(esb, instances)
    assert report["Status"] == "Success", report
    assert {(s["SOPClassUID"], s["SOPInstanceUID"]) for s in report["Success"]} == set(instances)
    assert report["Failures"] == []

    missing = (instances[0][0], generate_uid())
    report = commitment(esb, [instances[0], missing])
    assert report["Status"] == "Failure", report
    assert [(s["SOPClassUID"], s["SOPInstanceUID"]) for s in report["Success"]] == [instances[0]]
    [failure] = report["Failures"]
    assert (failure["SOPClassUID"], failure["SOPInstanceUID"]) == missing
    assert failure["FailureReason"] == 0x0112  # no such object instance
