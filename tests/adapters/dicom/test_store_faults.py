"""dicom: C-STORE statuses from the route's outcome, aborted associations, TLS, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pynetdicom.presentation import build_context

from esb.components import Outcome
from esb.errors import DicomError, JournalError
from esb.exchange import Exchange
from tests.adapters.dicom import support
from tests.adapters.dicom.conftest import DicomEngine
from tests.adapters.dicom.support import RECEIVED, association, port_of, spooled
from tests.conftest import write_routes
from tests.dicom_support import LARGE_CT, dcmtk, require_dcmtk, series
from tests.support import StartEngine, wait_for
from tests.tlsutil import make_certs

pytestmark = pytest.mark.filterwarnings("error")

VERIFICATION = "1.2.840.10008.1.1"


def _store(port: int, files: list[Path], **kwargs: object) -> list[int]:
    with association(port, support.store_contexts(*files), **kwargs) as assoc:  # type: ignore[arg-type]
        assert assoc.is_established
        return [int(assoc.send_c_store(dcmread(f)).Status) for f in files]


async def test_the_status_follows_the_route_outcome(tmp_path: Path, start_engine: StartEngine) -> None:
    write_routes(
        tmp_path / "routes",
        {
            "refuses": support.route(
                "", "transform: {python: tests.adapters.dicom.support:refuse_a900}", route_id="refuses"
            ),
            "fails": support.route("", "transform: {python: tests.adapters.dicom.support:boom}", route_id="fails"),
            "chosen": support.route(
                "",
                "transform: {python: tests.adapters.dicom.support:boom}",
                on_error='reply: {status: "0xA702"}',
                route_id="chosen",
            ),
            "filtered": support.route("", "filter: {header: dicom-modality, equals: MR}", route_id="filtered"),
        },
    )
    engine = await start_engine()
    files = series(tmp_path / "in", 2)
    answers = {}
    for rid in ("refuses", "fails", "chosen", "filtered"):
        answers[rid] = await asyncio.to_thread(_store, port_of(engine, rid), files)
    assert answers == {
        "refuses": [0xA900, 0xA900],
        "fails": [0xC000, 0xC000],
        "chosen": [0xA702, 0xA702],
        "filtered": [0x0000, 0x0000],  # the route chose to drop a CT: the sender is done with it
    }
    statuses = [r["status"] for r in support.journaled(engine)]
    assert sorted(statuses) == ["failed"] * 6 + ["filtered"] * 2


def test_status_of_an_outcome() -> None:
    from adapters.dicom.store import status_of

    exchange = Exchange(b"{}")
    assert status_of(Outcome(None, "failed", error=RuntimeError("journal down"))) == 0xA700
    assert status_of(Outcome("m", "processed", exchange)) == 0x0000
    assert status_of(Outcome("m", "failed", exchange, DicomError("x", status=0xA801))) == 0xA801
    assert status_of(Outcome("m", "failed", exchange, JournalError("lost"))) == 0xA700
    assert status_of(Outcome("m", "failed", exchange, OSError("disk full"))) == 0xA700
    assert status_of(Outcome("m", "failed", exchange, ValueError("bad"))) == 0xC000
    assert status_of(Outcome("m", "failed", exchange, ValueError("bad"), {"status": "0xB000"})) == 0xB000
    assert status_of(Outcome("m", "failed", exchange, ValueError("bad"), {"status": "soon"})) == 0xC000


async def test_an_aborted_association_keeps_what_was_stored(dicom_engine: DicomEngine, tmp_path: Path) -> None:
    engine = await dicom_engine()
    files = series(tmp_path / "in", 3)

    def store_two_then_abort() -> list[int]:
        with association(port_of(engine), support.store_contexts(*files)) as assoc:
            statuses = [int(assoc.send_c_store(dcmread(f)).Status) for f in files[:2]]
            assoc.abort()
            return statuses

    assert await asyncio.to_thread(store_two_then_abort) == [0x0000, 0x0000]
    assert await asyncio.to_thread(_store, port_of(engine), files[2:]) == [0x0000]
    assert [e.headers["dicom-sop-instance-uid"] for e in RECEIVED] == [dcmread(f).SOPInstanceUID for f in files]
    assert all(spooled(e).is_file() for e in RECEIVED)


async def test_storescu_killed_mid_transfer_loses_nothing_stored(dicom_engine: DicomEngine, tmp_path: Path) -> None:
    require_dcmtk()
    engine = await dicom_engine()
    files = series(tmp_path / "in", 40, source=LARGE_CT)
    command = ["storescu", "-R", "-aec", "ESB", "127.0.0.1", str(port_of(engine)), *map(str, files)]
    process = subprocess.Popen(command, env={**os.environ, "TCP_NODELAY": "1"}, stderr=subprocess.DEVNULL)
    try:
        await wait_for(lambda: len(RECEIVED) >= 3, 20, "three instances stored")
        process.send_signal(signal.SIGKILL)
    finally:
        await asyncio.to_thread(process.wait, 10)
    echo = await asyncio.to_thread(dcmtk, "echoscu", "-aec", "ESB", "127.0.0.1", str(port_of(engine)))
    assert echo.returncode == 0, echo.stderr
    assert await asyncio.to_thread(_store, port_of(engine), files[-1:]) == [0x0000]
    stored = len(RECEIVED)
    assert 4 <= stored <= len(files)
    sent = {dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in files}
    for exchange in RECEIVED:
        original = dcmread(sent[exchange.headers["dicom-sop-instance-uid"]])
        assert dcmread(spooled(exchange)).PixelData == original.PixelData
    rows = support.journaled(engine)
    assert len(rows) == stored and {r["status"] for r in rows} == {"processed"}


async def test_tls_associations(dicom_engine: DicomEngine, tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    query = f"tls=true&certfile={certs.server_cert}&keyfile={certs.server_key}&cafile={certs.ca}&client_auth=required"
    engine = await dicom_engine(query)
    files = series(tmp_path / "in", 2)
    client = certs.client_context(with_cert=True)
    statuses = await asyncio.to_thread(_store, port_of(engine), files, tls_args=(client, "127.0.0.1"))
    assert statuses == [0x0000, 0x0000] and len(RECEIVED) == 2

    def plain_echo() -> bool:
        with association(port_of(engine), [build_context(VERIFICATION)]) as assoc:
            return bool(assoc.is_established)

    def certless_echo() -> bool:
        anonymous = certs.client_context(with_cert=False)
        with association(port_of(engine), [build_context(VERIFICATION)], tls_args=(anonymous, "127.0.0.1")) as a:
            return bool(a.is_established)

    assert await asyncio.to_thread(plain_echo) is False
    assert await asyncio.to_thread(certless_echo) is False
    assert await asyncio.to_thread(_store, port_of(engine), files[:1], tls_args=(client, "127.0.0.1")) == [0]


async def test_stopping_answers_new_stores_with_a700_and_closes(dicom_engine: DicomEngine, tmp_path: Path) -> None:
    engine = await dicom_engine()
    files = series(tmp_path / "in", 2)
    consumer: Any = engine.routes["r"].consumer
    port = port_of(engine)

    def store_across_stop() -> list[int]:
        with association(port, support.store_contexts(*files)) as assoc:
            first = int(assoc.send_c_store(dcmread(files[0])).Status)
            consumer.receiver.closing = True  # what stop() does first
            return [first, int(assoc.send_c_store(dcmread(files[1])).Status)]

    assert await asyncio.to_thread(store_across_stop) == [0x0000, 0xA700]
    await consumer.stop()

    def refused() -> bool:
        with association(port, [build_context(VERIFICATION)]) as assoc:
            return bool(assoc.is_established)

    assert await asyncio.to_thread(refused) is False
    assert len(RECEIVED) == 1
