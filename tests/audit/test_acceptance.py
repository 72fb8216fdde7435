"""Acceptance (issue 7): audit records of each listed event reach a real syslog TLS receiver on 127.0.0.1
and survive the receiver being down for a while.

The real engine with the shipped routes (hl7-in, xds-registry, xds-repository,
dicom-in) is driven as peers drive it: an ITI-8 feed and ITI-9 queries over
MLLP, ITI-41/42/18/43 over SOAP (zeep), C-STORE and C-FIND from a pynetdicom
SCU; the engine's start and stop are audited too. The receiver is the Python
one (always) or rsyslog (``ESB_TEST_RSYSLOG=1``). It is stopped in the
middle, more transactions are made, and started again: in the end every
record the engine stored arrived at least once, recognised by the record id
in each message's structured data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from lxml import etree
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind

from esb.audit import xml
from esb.audit.store import AuditStore
from esb.journal import database
from tests.audit.receivers import PySyslog, Rsyslog, rsyslog_wanted, wait_for
from tests.dicom_support import identifier, series
from tests.tlsutil import Certs
from tests.xds import samples
from tests.xds_e2e.harness import ROOT, MllpClient, RunningEngine, running_engine, segment
from tests.xds_e2e.zeep_xds import REPOSITORY, XdsClient, find_documents, ok, unique_ids

HIS = "HIS1&1.2.3.1&ISO"
ROUTES = tuple(ROOT / "routes" / f"{name}.yaml" for name in ("xds-registry", "xds-repository", "hl7-in", "dicom-in"))
Receiver = PySyslog | Rsyslog


@pytest.fixture(params=["python", "rsyslog"])
def arr(request: pytest.FixtureRequest, certs: Certs, tmp_path: Path) -> Iterator[Receiver]:
    receiver: Receiver
    if request.param == "rsyslog":
        rsyslog_wanted()
        (tmp_path / "rsyslog").mkdir()
        receiver = Rsyslog(tmp_path / "rsyslog", certs.ca, certs.server_cert, certs.server_key)
    else:
        receiver = PySyslog(certs.server_context())
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.close()


def msh(kind: str, control: str) -> str:
    return f"MSH|^~\\&|HIS1|HOSP|EMPI|REGION|20261129080000||{kind}|{control}|P|2.5|||||||UNICODE UTF-8"


def feed_and_query(running: RunningEngine, local_id: str) -> None:
    """ITI-8 ADT^A01 of a new patient, then ITI-9 about it."""
    with MllpClient(running.mllp_port) as mllp:
        pid = f"PID|1||{local_id}^^^{HIS}^MR||Family{local_id}^Given||19700101|F"
        ack = mllp.call("\r".join([msh("ADT^A01^ADT_A01", f"a-{local_id}"), "EVN|A01|20261129080000", pid]))
        assert segment(ack, "MSA")[1] == "AA", ack
        pix_query(mllp, local_id)


def pix_query(mllp: MllpClient, local_id: str) -> None:
    control = f"q-{uuid.uuid4().hex[:8]}"
    rsp = mllp.call("\r".join([msh("QBP^Q23^QBP_Q21", control), f"QPD|IHE PIX Query|{control}|{local_id}^^^{HIS}",
                               "RCP|I"]))  # fmt: skip
    assert segment(rsp, "MSA")[1] == "AA", rsp


def documents(running: RunningEngine) -> None:
    """ITI-41 (which registers through ITI-42 in-process), ITI-42 to the registry, ITI-18, ITI-43."""
    client = XdsClient(running)
    pid = running.patient()
    submit = samples.submission(pid, document={"omit": ("hash", "size", "repositoryUniqueId")})
    [unique] = unique_ids(submit)
    ok(client.provide(submit, {"Document01": b"<report>ok</report>"}))
    ok(client.register(samples.submission(pid)))
    find_documents(client, pid)
    ok(client.retrieve((REPOSITORY, unique)))


def dicom(running: RunningEngine, files: list[Path]) -> None:
    """One association: C-STORE of every file (two studies), then a C-FIND at STUDY level."""
    port = int(running.engine.routes["dicom-in"].consumer.port)  # type: ignore[attr-defined]
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="ESB")
    assert assoc.is_established
    try:
        for path in files:
            status = assoc.send_c_store(dcmread(path))
            assert status.Status == 0x0000
        find(assoc)
    finally:
        assoc.release()


def find(assoc: Any) -> None:
    answers = list(assoc.send_c_find(identifier("STUDY", StudyInstanceUID="", PatientID="P0001"),
                                     StudyRootQueryRetrieveInformationModelFind))  # fmt: skip
    assert answers[-1][0].Status == 0x0000


def c_find(running: RunningEngine) -> None:
    port = int(running.engine.routes["dicom-in"].consumer.port)  # type: ignore[attr-defined]
    ae = AE(ae_title="VIEWER1")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="ESB")
    assert assoc.is_established
    try:
        find(assoc)
    finally:
        assoc.release()


def stored_ids(db: sa.Engine) -> set[str]:
    with db.connect() as conn:
        return {row.id for row in conn.execute(sa.text("SELECT id FROM esb_audit_records"))}


def kinds(receiver: Receiver) -> dict[str, list[Any]]:
    """Received messages by (EventID, first EventTypeCode or action), each parsed and schema-checked."""
    out: dict[str, list[Any]] = {}
    for message in receiver.messages:
        assert xml.problems(message.xml) == []
        root = etree.fromstring(message.xml)
        ident = root.find("EventIdentification")
        types = [t.get("csd-code") for t in ident.findall("EventTypeCode")]  # type: ignore[union-attr]
        key = f"{ident.find('EventID').get('csd-code')}/{types[0] if types else ident.get('EventActionCode')}"  # type: ignore[union-attr]
        out.setdefault(key, []).append(root)
    return out


def test_records_of_every_listed_event_reach_the_arr_and_survive_its_outage(
    arr: Receiver, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "ESB_AUDIT_REPOSITORY": f"syslog+tls://127.0.0.1:{arr.tls_port}", "ESB_AUDIT_CAFILE": str(certs.ca),
        "ESB_AUDIT_SITE_ID": "REGION-TEST", "ESB_AUDIT_RETRY_DELAY": "50ms", "ESB_AUDIT_RETRY_MAX_DELAY": "300ms",
        "ESB_DICOM_PORT": "0", "ESB_DICOM_CONFIG": str(tmp_path / "dicom.yaml"),
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    (tmp_path / "dicom.yaml").write_text("remote_aes: {}\n", encoding="utf-8")
    files = series(tmp_path / "s1", 3) + series(tmp_path / "s2", 3)
    db_url = f"sqlite:///{tmp_path}/esb.db"
    (tmp_path / "engine").mkdir()
    with running_engine(tmp_path / "engine", db_url, ROUTES) as running:
        store = AuditStore(running.db)
        local_id = f"L{uuid.uuid4().hex[:6]}"
        feed_and_query(running, local_id)
        documents(running)
        dicom(running, files)
        wait_for("every record sent", lambda: store.status()["unsent"] == 0 and stored_ids(running.db))
        wait_for("every record received", lambda: stored_ids(running.db) <= set(arr.record_ids))

        arr.stop()  # the ARR goes down; transactions go on
        sent_before = set(arr.record_ids)
        with MllpClient(running.mllp_port) as mllp:
            pix_query(mllp, local_id)
        c_find(running)
        wait_for("a send that failed", lambda: store.status()["last_error"])
        assert store.status()["unsent"] >= 2
        assert set(arr.record_ids) == sent_before

        arr.start()
        wait_for("the records kept meanwhile sent", lambda: store.status()["unsent"] == 0)
    db = database.make_engine(db_url)
    try:
        everything = stored_ids(db)
        wait_for("every record received, the stop too", lambda: everything <= set(arr.record_ids))
        assert AuditStore(db).status()["unsent"] == 0
    finally:
        db.dispose()
    received = kinds(arr)
    for expected in (
        "110100/110120", "110100/110121", "110110/ITI-8", "110112/ITI-9", "110107/ITI-41", "110107/ITI-42",
        "110112/ITI-18", "110106/ITI-43", "110104/C", "110112/E",
    ):  # fmt: skip
        assert expected in received, f"no {expected} among {sorted(received)}"
    assert len(received["110112/ITI-9"]) == 2 and len(received["110112/E"]) == 2  # before and during the outage
    transferred = received["110104/C"]  # one per study of the association, not one per instance
    assert len(transferred) == 2
    assert sorted(int(s.get("NumberOfInstances")) for m in transferred for s in m.iter("SOPClass")) == [3, 3]
    [feed] = received["110110/ITI-8"]
    assert (
        feed.find("ParticipantObjectIdentification")
        .get("ParticipantObjectID")
        .endswith(f"^^^{HIS.split('&')[0]}&1.2.3.1&ISO")
    )  # type: ignore[union-attr]
    assert all(m.find("AuditSourceIdentification").get("AuditEnterpriseSiteID") == "REGION-TEST"  # type: ignore[union-attr]
               for ms in received.values() for m in ms)  # fmt: skip
