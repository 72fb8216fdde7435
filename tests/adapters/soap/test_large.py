"""Large MTOM messages go through on disk, not in memory: a 64 MB part in, a 32 MB document out.

Memory is checked with tracemalloc around the transfer (engine and client share
this process): the peak of Python allocations must stay far below the size of
the part, so no layer (the parser, the spooler, the journal, the reply) held it.
"""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from esb.exchange import attachments_from_headers
from esb.journal import admin
from tests.adapters.soap.conftest import SoapEngine
from tests.soap_client import Part, envelope, include, mtom, parse_reply, soap_call

MIB = 1024 * 1024
ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
#: far below the transferred size, well above buffers (1 MiB file chunks, 256 KiB reads)
PEAK_LIMIT = 12 * MIB


def blocks(count: int) -> list[bytes]:
    """``count`` different 1 MiB blocks (so a mixed-up order would show in the hash)."""
    seed = hashlib.sha256(b"esb").digest() * (MIB // 32)
    return [bytes([index % 251]) + seed[1:] for index in range(count)]


async def test_large_part_is_streamed_to_a_spool_file(soap_engine: SoapEngine, client: aiohttp.ClientSession) -> None:
    engine = await soap_engine(
        {"r": ("soap://127.0.0.1:0/big", "transform: {python: tests.adapters.soap.steps:summary}")}
    )
    url = f"http://127.0.0.1:{engine.http_port}/big"
    data = blocks(64)
    expected = hashlib.sha256(b"".join(data)).hexdigest()
    payload = f'<xds:Document xmlns:xds="urn:ihe:iti:xds-b:2007" id="Doc1">{include("big@esb.test")}</xds:Document>'
    value, body = mtom(envelope(payload.encode(), action=ITI41), [Part("big@esb.test", "application/dicom", b"@@@")])
    head, tail = body.split(b"@@@")

    async def stream() -> AsyncIterator[bytes]:
        yield head
        for block in data:
            yield block
        yield tail

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async with client.post(url, data=stream(), headers={"Content-Type": value}) as answer:
            reply = parse_reply(answer.status, answer.headers, await answer.read())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reply.status == 200, reply.body[:300]
    part = reply.payload[0]
    assert (part.get("cid"), part.get("size")) == ("big@esb.test", str(64 * MIB))
    assert peak < PEAK_LIMIT, f"peak {peak / MIB:.1f} MiB while receiving 64 MiB"
    stored = admin.get_message(engine.journal.engine, reply.headers["X-Message-Id"])
    (attachment,) = attachments_from_headers(stored["headers"])
    assert attachment.path is not None and attachment.content_type == "application/dicom"
    assert Path(attachment.path).is_relative_to(engine.settings.data_dir / "spool")
    digest = hashlib.sha256()
    with attachment.open() as handle:
        while piece := handle.read(MIB):
            digest.update(piece)
    assert digest.hexdigest() == expected and len(stored["body"]) < 1000


async def test_large_document_is_streamed_out_from_its_file(
    soap_engine: SoapEngine, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    engine = await soap_engine(
        {"r": ("soap://127.0.0.1:0/get", "transform: {python: tests.adapters.soap.steps:file_document}")}
    )
    document = tmp_path / "study.dcm"
    with document.open("wb") as handle:
        for block in blocks(32):
            handle.write(block)
    received = tmp_path / "reply.bin"
    request = f'<get xmlns="urn:test" path="{document}"/>'.encode()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        data = envelope(request, action="urn:ihe:iti:2007:RetrieveDocumentSet")
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
        async with client.post(f"http://127.0.0.1:{engine.http_port}/get", data=data, headers=headers) as answer:
            status, answer_headers = answer.status, answer.headers
            with received.open("wb") as handle:
                async for piece in answer.content.iter_chunked(256 * 1024):
                    handle.write(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 200 and peak < PEAK_LIMIT, f"peak {peak / MIB:.1f} MiB while sending 32 MiB"
    assert int(answer_headers["Content-Length"]) == received.stat().st_size
    reply = parse_reply(status, answer_headers, received.read_bytes())
    assert reply.parts["big@esb.test"].data == document.read_bytes()
    assert reply.parts["big@esb.test"].content_type == "application/dicom"


async def test_small_request_reference_for_the_round_trip(
    soap_engine: SoapEngine, client: aiohttp.ClientSession
) -> None:
    """The same route answers a small MTOM request with the same shape (guards the large tests' premise)."""
    engine = await soap_engine(
        {"r": ("soap://127.0.0.1:0/big", "transform: {python: tests.adapters.soap.steps:summary}")}
    )
    reply = await soap_call(
        client, f"http://127.0.0.1:{engine.http_port}/big", b"<d xmlns='urn:d'/>", action=ITI41,
        parts=[Part("s@t", "text/plain", b"12345")],
    )  # fmt: skip
    assert reply.status == 200 and reply.payload[0].get("size") == "5"
