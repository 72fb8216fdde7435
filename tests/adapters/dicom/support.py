"""Helpers of the ``dicom:`` adapter tests: routes, a pynetdicom SCU, a dcmtk storescp, byte comparisons."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context

from esb.errors import DicomError
from esb.exchange import Exchange, attachments_from_headers
from esb.journal.schema import messages
from esb.runtime.engine import Engine
from tests.dicom_support import require_dcmtk

#: a JPEG 2000 (lossy syntax) Secondary Capture among pydicom's files
J2K = "JPEG2000.dcm"

#: exchanges seen by the ``record`` transform, in order
RECEIVED: list[Exchange] = []


def route(query: str = "", *steps: str, on_error: str = "", route_id: str = "r") -> str:
    params = query if "archive=" in query else "&".join(p for p in (query, "archive=test-archive") if p)
    if "ae_title=" not in params:
        params = "ae_title=ESB&" + params
    body = "\n".join(f"    - {s}" for s in steps or ("transform: {python: tests.adapters.dicom.support:record}",))
    text = f"route:\n  id: {route_id}\n  from: dicom://127.0.0.1:0?{params}\n  steps:\n{body}\n"
    if on_error:
        text += "  on_error:\n" + "".join(f"    - {line}\n" for line in on_error.splitlines())
    return text


def port_of(engine: Engine, route_id: str = "r") -> int:
    return int(engine.routes[route_id].consumer.port)  # type: ignore[union-attr]


# -- transforms named by the routes ------------------------------------------------------------


def record(exchange: Exchange) -> None:
    RECEIVED.append(exchange.copy())


def refuse_a900(exchange: Exchange) -> None:
    raise DicomError("the route does not take this one", status=0xA900)


def boom(exchange: Exchange) -> None:
    raise RuntimeError("exploded")


# -- bytes --------------------------------------------------------------------------------------


def dataset_bytes(path: Path) -> bytes:
    """A Part 10 file's data set as encoded: everything after the file meta group (0002)."""
    data = path.read_bytes()
    assert data[128:132] == b"DICM", f"{path} is not a Part 10 file"
    pos = 132
    while struct.unpack_from("<H", data, pos)[0] == 0x0002:
        vr = data[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            pos += 12 + struct.unpack_from("<L", data, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
    return data[pos:]


def elements(ds: Dataset) -> dict[int, Any]:
    """Elements but group lengths and trailing padding, which dcmtk drops when it re-encodes a data set."""
    return {int(e.tag): e.value for e in ds if e.tag.element != 0x0000 and e.tag != 0xFFFCFFFC}


def spooled(exchange: Exchange) -> Path:
    (attachment,) = attachments_from_headers(exchange.headers)
    assert attachment.content_type == "application/dicom" and attachment.path is not None
    return Path(attachment.path)


def body_json(exchange: Exchange) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(exchange.body)
    return parsed


def journaled(engine: Engine) -> list[dict[str, Any]]:
    with engine.journal.engine.connect() as conn:
        rows = conn.execute(sa.select(messages).order_by(messages.c.received_at)).mappings().all()
    return [dict(r) for r in rows]


# -- a pynetdicom SCU (blocking: call it through asyncio.to_thread) -------------------------------


@contextlib.contextmanager
def association(
    port: int,
    contexts: list[PresentationContext],
    *,
    called: str = "ESB",
    calling: str = "TESTSCU",
    **kwargs: Any,
) -> Iterator[Association]:
    ae = AE(calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", port, contexts=contexts, ae_title=called, **kwargs)
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def store_contexts(*files: Path) -> list[PresentationContext]:
    """One context per (SOP class, transfer syntax) of the files, read from their file meta only."""
    metas = [read_file_meta_info(f) for f in files]
    pairs = {(str(m.MediaStorageSOPClassUID), str(m.TransferSyntaxUID)) for m in metas}
    return [build_context(sop_class, syntax) for sop_class, syntax in sorted(pairs)]


def nodelay_of(engine: Engine, route_id: str = "r") -> list[int]:
    """TCP_NODELAY of the SCP side of each open association."""
    server = engine.routes[route_id].consumer._server  # type: ignore[union-attr]
    assert server is not None
    found = []
    for assoc in server.active_associations:
        raw = assoc.dul.socket.socket
        found.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    return found


# -- dcmtk storescp as a receiving peer -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def storescp(directory: Path, *args: str, ae_title: str = "STORESCP") -> Iterator[int]:
    """dcmtk storescp on a free port writing into ``directory``; yields the port."""
    require_dcmtk()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = ["storescp", "-aet", ae_title, "-od", str(directory), "+xa", *args, str(port)]
    process = subprocess.Popen(command, env={**os.environ, "TCP_NODELAY": "1"}, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"storescp exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"storescp did not listen on {port} within {timeout}s")
