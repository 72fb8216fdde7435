"""dicom: the C-STORE SCU (to:) delivering to dcmtk storescp and to pynetdicom SCPs that refuse."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydicom import dcmread
from pydicom.uid import UID
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.transport import ThreadedAssociationServer

from adapters.dicom.producer import DicomProducer
from esb.errors import DicomRefusedError, DicomSendError, PermanentDeliveryError
from esb.exchange import Attachment, Exchange
from esb.journal.schema import deliveries
from esb.runtime.engine import Engine
from tests.adapters.dicom import support
from tests.adapters.dicom.conftest import DicomEngine
from tests.adapters.dicom.support import elements, free_port, port_of, storescp
from tests.dicom_support import dcmtk, series
from tests.support import wait_for

pytestmark = pytest.mark.filterwarnings("error")


def delivery_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.journal.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(deliveries)).mappings().all()]


async def test_a_forwarding_route_delivers_to_storescp(dicom_engine: DicomEngine, tmp_path: Path) -> None:
    files = [*series(tmp_path / "in", 2), *series(tmp_path / "in", 1, source=support.J2K)]
    with storescp(tmp_path / "peer") as peer_port:
        engine = await dicom_engine("", f"to: dicom://STORESCP@127.0.0.1:{peer_port}?calling_ae=FORWARDER")
        sent = await asyncio.to_thread(dcmtk, "storescu", "-R", "-xw", "-aec", "ESB", "127.0.0.1",
                                       str(port_of(engine)), *files)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        await wait_for(lambda: {r["status"] for r in delivery_rows(engine)} == {"delivered"}, 20, "deliveries")
        received = {dcmread(p).SOPInstanceUID: dcmread(p) for p in (tmp_path / "peer").iterdir()}
    originals = {dcmread(f).SOPInstanceUID: dcmread(f) for f in files}
    assert received.keys() == originals.keys()
    for uid, ds in received.items():
        assert ds.file_meta.TransferSyntaxUID == originals[uid].file_meta.TransferSyntaxUID
        assert elements(ds) == elements(originals[uid])
    assert len(delivery_rows(engine)) == 3


def _exchange(path: Path) -> Exchange:
    return Exchange(b"{}", attachments=[Attachment("x", "application/dicom", path=str(path))])


def _producer(engine: Engine, uri: str) -> DicomProducer:
    producer = engine.context.producer(uri)
    assert isinstance(producer, DicomProducer)
    return producer


@contextlib.contextmanager
def scp(status: int, ae_title: str = "PEER", nodelay: list[int] | None = None) -> Iterator[int]:
    """A pynetdicom Storage SCP answering every C-STORE with ``status``; yields its port.

    ``nodelay`` collects TCP_NODELAY of the calling socket (the producer's, in this process).
    """

    def store(event: Any) -> int:
        if nodelay is not None:
            caller = event.assoc.requestor.port
            for thread in threading.enumerate():
                sock = getattr(getattr(getattr(thread, "dul", None), "socket", None), "socket", None)
                if getattr(thread, "is_requestor", False) and sock and sock.getsockname()[1] == caller:
                    nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return status

    ae = AE(ae_title)
    ae.supported_contexts = AllStoragePresentationContexts
    ae.require_called_aet = True
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, store)])
    assert isinstance(server, ThreadedAssociationServer)
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (0x0000, "0x0000"),
        (0xB000, "0xB000"),  # coercion warning: stored
        (0xA700, DicomSendError),  # out of resources: later
        (0xA900, DicomRefusedError),  # does not match SOP class: never
        (0xC000, DicomRefusedError),
    ],
)
async def test_c_store_statuses_decide_the_delivery(
    dicom_engine: DicomEngine, tmp_path: Path, status: int, outcome: Any
) -> None:
    engine = await dicom_engine()
    (file,) = series(tmp_path / "in", 1)
    nodelay: list[int] = []
    with scp(status, nodelay=nodelay) as port:
        producer = _producer(engine, f"dicom://PEER@127.0.0.1:{port}")
        if isinstance(outcome, str):
            reply = await producer.send(_exchange(file))
            assert reply is not None and reply.headers["dicom-status"] == outcome
            assert nodelay == [1]  # the producer's socket too
        else:
            with pytest.raises(outcome) as raised:
                await producer.send(_exchange(file))
            assert f"0x{status:04X}" in str(raised.value)
            assert isinstance(raised.value, PermanentDeliveryError) is (outcome is DicomRefusedError)


async def test_association_failures(dicom_engine: DicomEngine, tmp_path: Path) -> None:
    engine = await dicom_engine()
    (file,) = series(tmp_path / "in", 1)
    with pytest.raises(DicomSendError, match="could not associate") as down:
        await _producer(engine, f"dicom://PEER@127.0.0.1:{free_port()}").send(_exchange(file))
    assert not isinstance(down.value, PermanentDeliveryError)  # the peer may come back: retried
    with scp(0x0000) as port, pytest.raises(DicomRefusedError, match="Called AE title not recognised"):
        await _producer(engine, f"dicom://OTHER@127.0.0.1:{port}").send(_exchange(file))
    with pytest.raises(DicomRefusedError, match="has no DICOM file to send"):
        await _producer(engine, "dicom://PEER@127.0.0.1:104").send(Exchange(b"{}"))
    private = dcmread(file)
    private.SOPClassUID = private.file_meta.MediaStorageSOPClassUID = UID("1.2.826.0.1.3680043.8.498.77.1")
    private.save_as(tmp_path / "private.dcm")
    with scp(0x0000) as port, pytest.raises(DicomRefusedError, match="accepts no presentation context"):
        await _producer(engine, f"dicom://PEER@127.0.0.1:{port}").send(_exchange(tmp_path / "private.dcm"))
