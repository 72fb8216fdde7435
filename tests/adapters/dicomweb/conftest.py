"""A DICOMweb service on a real HTTP hub (127.0.0.1, port 0) over a FolderArchive, and a client.

The consumer is the adapter's own; only the engine is stood in for by a
handler that stores each STOW-RS exchange the way ``to: service:dicom-archive/store``
does (the engine-level tests run the real engine). Multipart answers are
parsed with requests-toolbelt's MultipartDecoder, a parser independent of
the one under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from requests_toolbelt.multipart.decoder import MultipartDecoder

from adapters.dicomweb.consumer import DicomWebConsumer
from adapters.dicomweb.options import DicomWebOptions
from esb.components import Outcome
from esb.errors import DicomError
from esb.exchange import Exchange
from esb.http.hub import HttpHub
from esb.uri import build_options
from tests.adapters.dicomweb.archive_double import FolderArchive
from tests.dicom_support import series

VIEWER = "https://viewer.example.org"


@dataclass
class Web:
    """The service under test: its base URL, its archive, what the route got, a client."""

    base: str
    archive: FolderArchive
    client: aiohttp.ClientSession
    spool: Path
    received: list[Exchange] = field(default_factory=list)

    def load(self, directory: Path, count: int, **kwargs: Any) -> list[str]:
        """Store a generated series straight into the archive; its SOP Instance UIDs in order."""
        uids = []
        for path in series(directory, count, **kwargs):
            uids.append(self.archive.store(path).instance.sop_instance_uid)
        return uids


def parts(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """(headers, content) of each part, by requests-toolbelt."""
    decoded = MultipartDecoder(body, content_type)
    return [({k.decode(): v.decode() for k, v in p.headers.items()}, p.content) for p in decoded.parts]


MakeWeb = Callable[..., Awaitable[Web]]


@pytest.fixture
async def make_web(tmp_path: Path) -> AsyncIterator[MakeWeb]:
    """``await make_web(**uri_options)`` -> a started service (default options: cors for VIEWER)."""
    started: list[tuple[HttpHub, DicomWebConsumer]] = []
    session = aiohttp.ClientSession()

    async def make(**values: str) -> Web:
        archive = FolderArchive(tmp_path / f"archive{len(started)}")
        spool = tmp_path / "spool"
        received: list[Exchange] = []

        async def handler(exchange: Exchange, wait: bool) -> Outcome:
            assert wait, "STOW-RS waits for the route, like C-STORE"
            received.append(exchange)
            try:
                await asyncio.to_thread(archive.store, Path(str(exchange.attachments[0].path)))
            except DicomError as exc:
                return Outcome(message_id=f"m{len(received)}", status="failed", error=exc)
            return Outcome(message_id=f"m{len(received)}", status="processed", exchange=exchange)

        given = {"host": "127.0.0.1", "port": "0", "path": "/dicomweb", "cors": VIEWER, **values}
        options = build_options(DicomWebOptions, given, where="dicomweb")
        hub = HttpHub()
        consumer = DicomWebConsumer(hub, options, handler, "dicomweb", lambda: archive, spool, "ESB")
        await consumer.start()
        await hub.start()
        started.append((hub, consumer))
        port = hub.bound_port("127.0.0.1", 0)
        return Web(f"http://127.0.0.1:{port}/dicomweb", archive, session, spool, received)

    yield make
    for hub, consumer in started:
        await consumer.stop()
        await hub.close()
    await session.close()


@pytest.fixture
async def web(make_web: MakeWeb) -> Web:
    return await make_web()
