"""Storage commitment (PS3.4 Annex J) on the shipped routes dicom-in and dicom-commitment, real associations.

The modality is a pynetdicom AE on 127.0.0.1: it C-STOREs to the engine,
asks for commitment with an N-ACTION, and listens on its own port (named in
remote_aes) for the N-EVENT-REPORT the engine sends on an association of its
own, proposing the SCP role for itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.presentation import build_context

from esb.cli import main_group
from esb.runtime.engine import Engine
from esb.settings import PACKAGE_ROOT
from profiles.dicom.commitment import PUSH_MODEL, PUSH_MODEL_INSTANCE
from profiles.dicom.commitment_schema import commitments
from tests.adapters.dicom.support import association, free_port, port_of
from tests.dicom_support import series
from tests.support import StartEngine, wait_for

MODALITY = "MODALITY1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


class ReportListener:
    """The modality's side that takes N-EVENT-REPORTs: (event type, event information) of each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reports: list[tuple[int, Dataset]] = []
        self.calling: list[str] = []
        self._server: Any = None
        self._lock = threading.Lock()

    def _on_report(self, event: Any) -> tuple[int, None]:
        with self._lock:
            self.reports.append((int(event.request.EventTypeID), event.event_information))
            self.calling.append(str(event.assoc.requestor.ae_title))
        return 0x0000, None

    def start(self) -> None:
        ae = AE(MODALITY)
        ae.add_supported_context(PUSH_MODEL, scu_role=True, scp_role=True)
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_N_EVENT_REPORT, self._on_report)])  # fmt: skip

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


@contextlib.contextmanager
def listening(port: int) -> Iterator[ReportListener]:
    listener = ReportListener(port)
    listener.start()
    try:
        yield listener
    finally:
        listener.stop()


@pytest.fixture
async def engine(
    db_url: str,
    tmp_path: Path,
    start_engine: StartEngine,
    monkeypatch: pytest.MonkeyPatch,
    dicom_config: Callable[[dict[str, int]], Path],
) -> tuple[Engine, int]:
    """The shipped dicom-in and dicom-commitment routes; the modality's report port (in remote_aes)."""
    report_port = free_port()
    dicom_config({MODALITY: report_port})
    monkeypatch.setenv("ESB_DICOM_PORT", "0")
    monkeypatch.setenv("ESB_LISTEN_HOST", "127.0.0.1")
    monkeypatch.setenv("ESB_DICOM_COMMITMENT_EVERY", "200ms")
    (tmp_path / "routes").mkdir()
    for name in ("dicom-in", "dicom-commitment"):
        shutil.copy(PACKAGE_ROOT / "routes" / f"{name}.yaml", tmp_path / "routes")
    running = await start_engine(db_url=db_url)
    return running, report_port


def store(port: int, files: list[Path]) -> None:
    contexts = [build_context(CT_IMAGE)]
    with association(port, contexts, calling=MODALITY) as assoc:
        for path in files:
            assert assoc.send_c_store(dcmread(path)).Status == 0x0000


def n_action(port: int, information: Dataset | None, *, calling: str = MODALITY, action: int = 1,
             instance: str = PUSH_MODEL_INSTANCE) -> int:  # fmt: skip
    with association(port, [build_context(PUSH_MODEL)], calling=calling) as assoc:
        assert assoc.is_established
        status, _ = assoc.send_n_action(information, action, PUSH_MODEL, instance)
        return int(status.Status)


def request(transaction_uid: str, references: list[tuple[str, str]]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    items = []
    for sop_class, sop_instance in references:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_instance
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


def pairs(sequence: Any, *, reasons: bool = False) -> set[tuple[Any, ...]]:
    if reasons:
        return {(i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID, int(i.FailureReason)) for i in sequence}
    return {(i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID) for i in sequence}


async def test_stored_instances_are_committed_and_the_rest_reported_failed(
    engine: tuple[Engine, int], tmp_path: Path
) -> None:
    running, report_port = engine
    port = port_of(running, "dicom-in")
    files = series(tmp_path / "ct", 2, study_uid=generate_uid(), patient_id="SC-1")
    await asyncio.to_thread(store, port, files)
    stored = [(CT_IMAGE, str(dcmread(f, stop_before_pixels=True).SOPInstanceUID)) for f in files]
    unknown = (CT_IMAGE, generate_uid())
    wrong_class = (MR_IMAGE, stored[1][1])
    with listening(report_port) as modality:
        # all of them here: event type 1, every instance listed as committed
        whole = generate_uid()
        assert await asyncio.to_thread(n_action, port, request(whole, stored)) == 0x0000
        await wait_for(lambda: len(modality.reports) == 1, what="the first report")
        event_type, info = modality.reports[0]
        assert (event_type, info.TransactionUID, info.RetrieveAETitle) == (1, whole, "ESB")
        assert pairs(info.ReferencedSOPSequence) == set(stored) and "FailedSOPSequence" not in info
        assert modality.calling == ["ESB"]
        # one not here and one of another class: event type 2 with a reason each
        partial = generate_uid()
        asked = [stored[0], unknown, wrong_class]
        assert await asyncio.to_thread(n_action, port, request(partial, asked)) == 0x0000
        await wait_for(lambda: len(modality.reports) == 2, what="the second report")
        event_type, info = modality.reports[1]
        assert (event_type, info.TransactionUID) == (2, partial)
        assert pairs(info.ReferencedSOPSequence) == {stored[0]}
        assert pairs(info.FailedSOPSequence, reasons=True) == {(*unknown, 0x0112), (*wrong_class, 0x0119)}
    with running.journal.engine.connect() as conn:
        rows = conn.execute(sa.select(commitments).order_by(commitments.c.requested_at)).all()
    assert [(r.transaction_uid, r.status, r.committed, r.failed) for r in rows] == [
        (whole, "sent", 2, 0), (partial, "sent", 1, 2),
    ]  # fmt: skip
    assert all(r.calling_ae == MODALITY and r.remote == MODALITY for r in rows)
    listed = CliRunner(env={"ESB_DB_URL": running.settings.db_url, "ESB_CONFIG": None}).invoke(
        main_group, ["--json", "dicom", "commitments", "--status", "sent"], catch_exceptions=False
    )
    assert listed.exit_code == 0, listed.output
    shown = json.loads(listed.stdout)
    assert [(r["transaction_uid"], r["committed"], r["failed"]) for r in shown] == [(partial, 1, 2), (whole, 2, 0)]


async def test_a_report_the_modality_cannot_take_yet_is_sent_once_it_listens(engine: tuple[Engine, int]) -> None:
    running, report_port = engine
    port = port_of(running, "dicom-in")
    transaction = generate_uid()
    assert await asyncio.to_thread(n_action, port, request(transaction, [(CT_IMAGE, generate_uid())])) == 0x0000
    db = running.journal.engine

    def row() -> Any:
        with db.connect() as conn:
            return conn.execute(sa.select(commitments)).one()

    await wait_for(lambda: row().attempts >= 1, what="a first attempt against a closed port")
    first = row()
    assert first.status == "pending" and "refused or did not answer" in first.error
    assert first.next_attempt_at > first.requested_at  # backed off, not hammering the modality
    with listening(report_port) as modality:
        with db.begin() as conn:  # as if the backoff had run out
            conn.execute(sa.update(commitments).values(next_attempt_at=first.requested_at))
        await wait_for(lambda: len(modality.reports) == 1, what="the report once the modality listens")
        assert modality.reports[0][0] == 2
    assert row().status == "sent" and row().error is None


async def test_bad_requests_get_failure_statuses_and_nothing_is_recorded(engine: tuple[Engine, int]) -> None:
    running, _ = engine
    port = port_of(running, "dicom-in")
    good = request(generate_uid(), [(CT_IMAGE, generate_uid())])
    no_transaction = request("", [(CT_IMAGE, generate_uid())])
    del no_transaction.TransactionUID
    empty = request(generate_uid(), [])
    half = request(generate_uid(), [(CT_IMAGE, "")])
    answers = [
        await asyncio.to_thread(n_action, port, good, calling="STRANGER"),  # not in remote_aes: no report address
        await asyncio.to_thread(n_action, port, good, action=2),  # no such action type
        await asyncio.to_thread(n_action, port, good, instance="1.2.3.4"),  # not the well-known instance
        await asyncio.to_thread(n_action, port, no_transaction),
        await asyncio.to_thread(n_action, port, empty),
        await asyncio.to_thread(n_action, port, half),
    ]
    assert answers == [0x0110, 0x0123, 0x0112, 0x0120, 0x0120, 0x0106]
    with running.journal.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(commitments)).scalar_one() == 0


def test_a_claim_outlasts_sending_every_report_it_took() -> None:
    """Each report may wait TIMEOUT for the association, the response and the network; a tick's claims all
    fit in the lease, so no other node takes a report this one is still sending (and sends it twice)."""
    from profiles.dicom import commitment, commitment_report

    assert commitment.CLAIM_LIMIT * 3 * commitment_report.TIMEOUT <= commitment.CLAIM_LEASE
