"""Modality Worklist end to end on the shipped routes: orders in over MLLP (RAD-4), C-FIND out (RAD-5).

The RIS is a real MLLP connection to hl7-in; the modality is dcmtk's
``findscu -W`` and a pynetdicom SCU against dicom-in, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom.presentation import build_context

import esb.audit as audit
from esb.cli import main_group
from esb.runtime.engine import Engine
from esb.settings import PACKAGE_ROOT
from profiles.worklist.orders import study_uid_for
from profiles.worklist.schema import performed
from tests.adapters.dicom.support import association, free_port, port_of
from tests.dicom_support import dcmtk
from tests.support import StartEngine
from tests.worklist.samples import omi, orm
from tests.xds_e2e.harness import MllpClient, segment

MWL_FIND = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"


async def start_shipped(
    db_url: str, tmp_path: Path, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> Engine:
    """The shipped hl7-in and dicom-in routes on free ports."""
    monkeypatch.setenv("ESB_DICOM_PORT", "0")
    monkeypatch.setenv("ESB_MLLP_PORT", str(free_port()))
    monkeypatch.setenv("ESB_LISTEN_HOST", "127.0.0.1")
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "no-listeners.yaml"))
    (tmp_path / "routes").mkdir()
    for name in ("dicom-in", "hl7-in"):
        shutil.copy(PACKAGE_ROOT / "routes" / f"{name}.yaml", tmp_path / "routes")
    return await start_engine(db_url=db_url)


@pytest.fixture
async def engine(db_url: str, tmp_path: Path, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    return await start_shipped(db_url, tmp_path, start_engine, monkeypatch)


def send(engine: Engine, message: str) -> list[list[str]]:
    with MllpClient(int(engine.routes["hl7-in"].consumer.port)) as mllp:  # type: ignore[union-attr]
        return mllp.call(message)


def query(engine: Engine, **keys: Any) -> list[Dataset]:
    """A pynetdicom MWL C-FIND with the usual return keys and the step keys given."""
    identifier = Dataset()
    identifier.SpecificCharacterSet = "ISO_IR 192"  # a hanzi name may be asked for
    identifier.PatientName = keys.pop("PatientName", "")
    identifier.PatientID = ""
    identifier.AccessionNumber = keys.pop("AccessionNumber", "")
    identifier.StudyInstanceUID = ""
    identifier.RequestedProcedureDescription = ""
    step = Dataset()
    for name in ("ScheduledStationAETitle", "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime",
                 "Modality", "ScheduledProcedureStepID", "ScheduledProcedureStepStatus"):  # fmt: skip
        setattr(step, name, keys.pop(name, ""))
    assert not keys, keys
    identifier.ScheduledProcedureStepSequence = [step]
    found: list[Dataset] = []
    with association(port_of(engine, "dicom-in"), [build_context(MWL_FIND)], calling="CT1") as assoc:
        for status, answer in assoc.send_c_find(identifier, MWL_FIND):
            if status.Status in (0xFF00, 0xFF01):
                found.append(answer)
            else:
                assert status.Status == 0x0000, hex(status.Status)
    return found


def steps(found: list[Dataset]) -> list[tuple[str, str]]:
    return sorted((str(ds.AccessionNumber), str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID))
                  for ds in found)  # fmt: skip


async def test_orders_become_worklist_items_that_modalities_find(engine: Engine, tmp_path: Path) -> None:
    for message in (orm("c1", accession="A1"), orm("c2", accession="A2", station="CT2", start="20261201080000"),
                    omi("c3", accession="A3", steps=(("S1", "MR", "MR1"), ("S2", "MR", "MR2")))):  # fmt: skip
        ack = await asyncio.to_thread(send, engine, message)
        assert segment(ack, "MSA")[1] == "AA", ack

    # by station AE title, as a modality asks for its own work (and the query is audited, ATNA DICOM Query)
    audit.clear_captured()
    mine = await asyncio.to_thread(query, engine, ScheduledStationAETitle="CT1")
    assert steps(mine) == [("A1", "SPSA1")]
    [queried] = [e for e in audit.captured() if e.event_id.code == "110112"]
    assert queried.objects[0].object_id == MWL_FIND and b"CT1" in (queried.objects[0].query or b"")
    [item] = mine
    assert str(item.PatientName) == "WANG^XIAODONG=王^小东" and item.SpecificCharacterSet == "ISO_IR 192"
    assert item.StudyInstanceUID == study_uid_for("A1") and item.RequestedProcedureDescription == "CT Chest"
    sps = item.ScheduledProcedureStepSequence[0]
    assert (sps.Modality, sps.ScheduledProcedureStepStartDate, sps.ScheduledProcedureStepStartTime) == (
        "CT", "20261130", "093000")  # fmt: skip
    assert sps.ScheduledProcedureStepStatus == "SCHEDULED"
    # by modality and a date range; by name, pinyin or hanzi, case-insensitive wildcard
    assert steps(await asyncio.to_thread(query, engine, Modality="MR")) == [("A3", "S1"), ("A3", "S2")]
    in_range = await asyncio.to_thread(query, engine, ScheduledProcedureStepStartDate="20261201-20261231")
    assert steps(in_range) == [("A2", "SPSA2"), ("A3", "S1"), ("A3", "S2")]
    assert steps(await asyncio.to_thread(query, engine, ScheduledProcedureStepStartTime="0900-1000")) == [
        ("A1", "SPSA1")]  # fmt: skip
    assert len(await asyncio.to_thread(query, engine, PatientName="wang*")) == 2
    assert len(await asyncio.to_thread(query, engine, PatientName="*=李^雷")) == 2
    assert await asyncio.to_thread(query, engine, ScheduledStationAETitle="XR9") == []

    # dcmtk's findscu -W, the way a modality's console tool asks
    out = tmp_path / "findscu"
    out.mkdir()
    keys = ["-k", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=MR2", "-k", "PatientName",
            "-k", "AccessionNumber", "-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID"]  # fmt: skip
    port = str(port_of(engine, "dicom-in"))
    result = await asyncio.to_thread(dcmtk, "findscu", "-W", "-X", *keys, "-aet", "MR2", "-aec", "ESB", "127.0.0.1",
                                     port, cwd=out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    [answer] = [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    assert (answer.AccessionNumber, str(answer.PatientName)) == ("A3", "LI^LEI=李^雷")
    assert answer.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID == "S2"


async def test_a_changed_order_updates_and_a_cancelled_or_completed_one_leaves_the_worklist(engine: Engine) -> None:
    assert segment(await asyncio.to_thread(send, engine, orm("n1", accession="B1")), "MSA")[1] == "AA"
    moved = orm("x1", order_control="XO", accession="B1", station="CT2", start="20261130150000")
    assert segment(await asyncio.to_thread(send, engine, moved), "MSA")[1] == "AA"
    [item] = await asyncio.to_thread(query, engine, AccessionNumber="B1")
    sps = item.ScheduledProcedureStepSequence[0]
    assert (sps.ScheduledStationAETitle, sps.ScheduledProcedureStepStartTime) == ("CT2", "150000")
    started = orm("s1", order_control="SC", accession="B1", status="IP")
    assert segment(await asyncio.to_thread(send, engine, started), "MSA")[1] == "AA"
    [item] = await asyncio.to_thread(query, engine, AccessionNumber="B1")
    assert item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "STARTED"
    done = orm("s2", order_control="SC", accession="B1", status="CM")
    assert segment(await asyncio.to_thread(send, engine, done), "MSA")[1] == "AA"
    assert await asyncio.to_thread(query, engine, AccessionNumber="B1") == []
    [kept] = await asyncio.to_thread(query, engine, AccessionNumber="B1", ScheduledProcedureStepStatus="COMPLETED")
    assert kept.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "COMPLETED"

    assert segment(await asyncio.to_thread(send, engine, orm("n2", accession="B2")), "MSA")[1] == "AA"
    cancelled = orm("c2", order_control="CA", accession="B2")
    assert segment(await asyncio.to_thread(send, engine, cancelled), "MSA")[1] == "AA"
    assert await asyncio.to_thread(query, engine, AccessionNumber="B2") == []


async def test_orders_that_cannot_be_used_are_answered_with_an_error(engine: Engine) -> None:
    no_accession = orm("e1", accession="")
    ack = await asyncio.to_thread(send, engine, no_accession)
    assert segment(ack, "MSA")[1:4] == ["AE", "e1", "OBR-18 Accession Number is required"]
    assert segment(ack, "ERR")[1].startswith("OBR^1^18^")
    bad_control = orm("e2", order_control="ZZ")
    ack = await asyncio.to_thread(send, engine, bad_control)
    assert segment(ack, "MSA")[1] == "AE" and segment(ack, "ERR")[1].startswith("ORC^1^1^")
    bad_start = orm("e3", accession="E3", start="2026-11-30")
    assert segment(await asyncio.to_thread(send, engine, bad_start), "MSA")[1] == "AE"
    assert await asyncio.to_thread(query, engine) == []


async def test_a_request_with_two_step_items_is_refused(engine: Engine) -> None:
    """PS3.4 K.6.1.2.1: one item in the request's Scheduled Procedure Step Sequence; 0xA900 otherwise."""
    identifier = Dataset()
    identifier.PatientName = ""
    first, second = Dataset(), Dataset()
    first.Modality, second.Modality = "CT", "MR"
    identifier.ScheduledProcedureStepSequence = [first, second]

    def statuses() -> list[int]:
        with association(port_of(engine, "dicom-in"), [build_context(MWL_FIND)], calling="CT1") as assoc:
            return [int(status.Status) for status, _ in assoc.send_c_find(identifier, MWL_FIND)]

    assert await asyncio.to_thread(statuses) == [0xA900]


def mpps(engine: Engine, action: str, sop_uid: str | None, attributes: Dataset) -> tuple[int, str]:
    """N-CREATE or N-SET of a Modality Performed Procedure Step; (status, error comment)."""
    with association(port_of(engine, "dicom-in"), [build_context(MPPS)], calling="CT1") as assoc:
        if action == "create":
            status, _ = assoc.send_n_create(attributes, MPPS, sop_uid)
        else:
            status, _ = assoc.send_n_set(attributes, MPPS, sop_uid)
        return int(status.Status), str(status.get("ErrorComment", "") or "")


def in_progress(accession: str, sps_id: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    step = Dataset()
    step.AccessionNumber, step.ScheduledProcedureStepID, step.StudyInstanceUID = accession, sps_id, study_uid_for(
        accession)  # fmt: skip
    ds.ScheduledStepAttributesSequence = [step]
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedStationAETitle, ds.Modality, ds.PerformedProcedureStepID = "CT1", "CT", "PPS1"
    ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = "20261130", "093500"
    return ds


def status_of(engine: Engine, accession: str) -> list[str]:
    found = query(engine, AccessionNumber=accession, ScheduledProcedureStepStatus="*")
    return [str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus) for ds in found]


async def test_performed_procedure_steps_move_the_worklist_item_along(engine: Engine) -> None:
    """RAD-6 N-CREATE IN PROGRESS, RAD-7 N-SET COMPLETED; refusals as PS3.4 F.7.2 statuses."""
    assert segment(await asyncio.to_thread(send, engine, orm("m1", accession="M1")), "MSA")[1] == "AA"
    sop_uid = "1.2.826.0.1.3680043.8.498.4242.1"
    created = await asyncio.to_thread(mpps, engine, "create", sop_uid, in_progress("M1", "SPSM1"))
    assert created[0] == 0x0000
    assert await asyncio.to_thread(status_of, engine, "M1") == ["STARTED"]
    again = await asyncio.to_thread(mpps, engine, "create", sop_uid, in_progress("M1", "SPSM1"))
    assert again[0] == 0x0111  # duplicate SOP instance

    done = Dataset()
    done.PerformedProcedureStepStatus = "COMPLETED"
    done.PerformedProcedureStepEndDate, done.PerformedProcedureStepEndTime = "20261130", "094500"
    assert (await asyncio.to_thread(mpps, engine, "set", sop_uid, done))[0] == 0x0000
    assert await asyncio.to_thread(status_of, engine, "M1") == ["COMPLETED"]
    assert await asyncio.to_thread(query, engine, AccessionNumber="M1") == []  # off the to-do list
    assert (await asyncio.to_thread(mpps, engine, "set", sop_uid, done))[0] == 0x0110  # final: no more updates
    assert (await asyncio.to_thread(mpps, engine, "set", "1.2.3.999", done))[0] == 0x0112

    # the SCP makes the UID up when the modality leaves it out; bad statuses are refused
    assert (await asyncio.to_thread(mpps, engine, "create", None, in_progress("M9", "S9")))[0] == 0x0000
    with engine.journal.engine.connect() as conn:
        rows = conn.execute(sa.select(performed.c.sop_uid, performed.c.status, performed.c.accession_numbers)).all()
    assert sorted((r.accession_numbers, r.status) for r in rows) == [("M1", "COMPLETED"), ("M9", "IN PROGRESS")]
    assert all(r.sop_uid.startswith("1.2.") for r in rows)
    wrong = in_progress("M1", "SPSM1")
    wrong.PerformedProcedureStepStatus = "COMPLETED"
    assert (await asyncio.to_thread(mpps, engine, "create", "1.2.3.1000", wrong))[0] == 0x0106
    bare = in_progress("M1", "SPSM1")
    del bare.ScheduledStepAttributesSequence
    assert (await asyncio.to_thread(mpps, engine, "create", "1.2.3.1001", bare))[0] == 0x0120

    # what an administrator sees
    cli = CliRunner(env={"ESB_DB_URL": engine.settings.db_url, "ESB_CONFIG": None})
    listed = cli.invoke(main_group, ["--json", "worklist", "items", "--status", "COMPLETED"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    assert [(r["accession_number"], r["station_ae"]) for r in json.loads(listed.stdout)] == [("M1", "CT1")]
    steps_done = cli.invoke(main_group, ["--json", "worklist", "performed"], catch_exceptions=False)
    assert steps_done.exit_code == 0, steps_done.output
    assert sorted(r["status"] for r in json.loads(steps_done.stdout)) == ["COMPLETED", "IN PROGRESS"]
