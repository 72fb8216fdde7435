"""The image archive's audit events through the real engine (routes dicom-in and dicomweb):
C-STORE and STOW-RS in, C-GET, C-MOVE, WADO-RS and RAD-69 out, C-FIND and QIDO-RS queries,
one DICOM Instances Transferred event per study per association or request."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from pydicom import dcmread
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

import esb.audit as audit
from esb.audit import xml
from esb.audit.model import AuditEvent, AuditSource
from profiles.dicom import audit as dicom_audit
from profiles.xdsi import rad69
from tests.audit.receivers import free_port, wait_for
from tests.dicom_support import identifier, series
from tests.xds_e2e.harness import ROOT, RunningEngine, running_engine

ROUTES = tuple(ROOT / "routes" / f"{name}.yaml" for name in ("dicom-in", "dicomweb"))
CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def viewer() -> Iterator[tuple[AE, list[str]]]:
    """A C-MOVE destination: a pynetdicom Storage SCP on 127.0.0.1 (the SOP Instance UIDs it got)."""
    got: list[str] = []

    def store(event: Any) -> int:
        got.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="VIEWER")
    ae.add_supported_context(CTImageStorage)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    server.port = port  # type: ignore[attr-defined]
    try:
        yield server, got
    finally:
        server.shutdown()


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, viewer: tuple[Any, list[str]]) -> Iterator[RunningEngine]:
    config = tmp_path / "dicom.yaml"
    config.write_text(f"remote_aes: {{VIEWER: {{host: 127.0.0.1, port: {viewer[0].port}}}}}\n", encoding="utf-8")
    monkeypatch.setenv("ESB_DICOM_PORT", "0")
    monkeypatch.setenv("ESB_DICOM_CONFIG", str(config))
    (tmp_path / "engine").mkdir()
    with running_engine(tmp_path / "engine", f"sqlite:///{tmp_path}/esb.db", ROUTES) as running:
        yield running


def events_of(code: str, action: str | None = None) -> list[AuditEvent]:
    return [e for e in audit.captured() if e.event_id.code == code and (action is None or e.action == action)]


def counts(event: AuditEvent) -> tuple[str, str, list[tuple[str, int]]]:
    study, patient = event.objects
    return study.object_id, patient.object_id, [(s.uid, s.count) for s in study.sop_classes]


def associate(running: RunningEngine, *contexts: str, roles: tuple[Any, ...] = (), handlers: Any = ()) -> Any:
    port = int(running.engine.routes["dicom-in"].consumer.port)  # type: ignore[attr-defined]
    ae = AE(ae_title="WORKSTATION")
    for context in contexts:
        ae.add_requested_context(context)
    assoc = ae.associate("127.0.0.1", port, ae_title="ESB", ext_neg=list(roles), evt_handlers=list(handlers))
    assert assoc.is_established
    return assoc


def test_dicom_transfers_and_queries_are_audited_per_study(
    engine: RunningEngine, viewer: tuple[Any, list[str]], tmp_path: Path
) -> None:
    study_a, study_b = f"2.25.{uuid.uuid4().int}", f"2.25.{uuid.uuid4().int}"
    a_files = series(tmp_path / "a", 3, study_uid=study_a, patient_id="PA", issuer="HIS1")
    b_files = series(tmp_path / "b", 2, study_uid=study_b, patient_id="PB", issuer="HIS1")
    audit.clear_captured()

    assoc = associate(engine, CTImageStorage, StudyRootQueryRetrieveInformationModelFind)
    for path in a_files:
        assert assoc.send_c_store(dcmread(path)).Status == 0x0000
    answers = list(assoc.send_c_find(identifier("STUDY", StudyInstanceUID=study_a, PatientID=""),
                                     StudyRootQueryRetrieveInformationModelFind))  # fmt: skip
    assert answers[-1][0].Status == 0x0000
    assoc.release()
    [stored] = wait_for("the C-STORE event at association close", lambda: events_of("110104", "C"))
    assert counts(stored) == (study_a, "PA^^^HIS1", [(CT, 3)])
    assert [p.user_id for p in stored.participants] == ["WORKSTATION", "ESB"]
    [find] = events_of("110112")
    assert find.objects[0].object_id == "1.2.840.10008.5.1.4.1.2.2.1" and find.objects[0].query

    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p.read_bytes() + b"\r\n"
                    for p in b_files) + f"--{boundary}--\r\n".encode()  # fmt: skip
    base = f"{engine.base_url}/dicomweb"
    answer = requests.post(f"{base}/studies", data=body, timeout=30, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    })  # fmt: skip
    assert answer.status_code == 200, answer.text
    stow = [e for e in events_of("110104", "C") if e.objects[0].object_id == study_b]
    assert [counts(e) for e in stow] == [(study_b, "PB", [(CT, 2)])]

    assert requests.get(f"{base}/studies", params={"PatientID": "PA"}, timeout=30).status_code == 200
    qido = [e for e in events_of("110112") if e.objects[0].query and b"PatientID=PA" in e.objects[0].query]
    assert len(qido) == 1
    assert requests.get(f"{base}/studies/{study_a}/metadata", timeout=30).status_code == 200
    [wado] = events_of("110104", "R")
    assert counts(wado) == (study_a, "PA^^^HIS1", [(CT, 3)])  # the patient from the archive's index

    got: list[str] = []

    def keep(event: Any) -> int:
        got.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    role = build_role(CTImageStorage, scp_role=True)
    getting = associate(engine, StudyRootQueryRetrieveInformationModelGet, CTImageStorage, roles=(role,),
                        handlers=[(evt.EVT_C_STORE, keep)])  # fmt: skip
    list(getting.send_c_get(identifier("STUDY", StudyInstanceUID=study_a), StudyRootQueryRetrieveInformationModelGet))
    getting.release()
    moving = associate(engine, StudyRootQueryRetrieveInformationModelMove)
    list(moving.send_c_move(identifier("STUDY", StudyInstanceUID=study_b), "VIEWER",
                            StudyRootQueryRetrieveInformationModelMove))  # fmt: skip
    moving.release()
    assert len(got) == 3 and len(viewer[1]) == 2
    retrieved = events_of("110104", "R")[1:]
    assert [counts(e) for e in retrieved] == [(study_a, "PA^^^HIS1", [(CT, 3)]), (study_b, "PB^^^HIS1", [(CT, 2)])]
    c_get, c_move = retrieved
    assert [(p.user_id, p.requestor) for p in c_get.participants] == [("ESB", False), ("WORKSTATION", True)]
    assert [(p.user_id, p.requestor) for p in c_move.participants] == [
        ("ESB", False), ("VIEWER", False), ("WORKSTATION", True),
    ]  # fmt: skip

    for event in audit.captured():
        assert xml.problems(xml.render(event, AuditSource("n"))) == []


def test_rad69_records_the_instances_delivered_by_study(engine: RunningEngine, tmp_path: Path) -> None:
    study = f"2.25.{uuid.uuid4().int}"
    files = series(tmp_path / "s", 2, study_uid=study, patient_id="PR", issuer="HIS1")
    archive: Any = engine.engine.context.known_service("dicom-archive").archive  # type: ignore[attr-defined]
    refs = [archive.store(path).instance for path in files]
    asked = [(r.study_uid, r.series_uid, r.sop_instance_uid) for r in refs] + [(study, refs[0].series_uid, "2.25.9")]
    request = rad69.request(asked, ["1.2.840.10008.1.2.1"], repository_unique_id="1.2.3")
    answer = etree.Element("{urn:ihe:iti:xds-b:2007}RetrieveDocumentSetResponse")
    for ref in refs:  # what the Imaging Document Source delivered (not the unknown third one)
        document = etree.SubElement(answer, "{urn:ihe:iti:xds-b:2007}DocumentResponse")
        etree.SubElement(document, "{urn:ihe:iti:xds-b:2007}DocumentUniqueId").text = ref.sop_instance_uid
    audit.clear_captured()
    dicom_audit.rad69({"http-remote": "10.0.0.3", "soap-to": "http://esb/xdsi"}, archive, request, answer)
    [event] = audit.captured()
    assert counts(event) == (study, "PR^^^HIS1", [(CT, 2)])
    assert event.transaction == "RAD-69" and event.action == "R"
    assert [(p.user_id, p.requestor) for p in event.participants] == [
        ("http://esb/xdsi", False), ("http://www.w3.org/2005/08/addressing/anonymous", True),
    ]  # fmt: skip
