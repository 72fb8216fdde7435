"""The streaming MIME parser and writer of adapters.soap.mtom, without HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.soap.mtom import MtomError, TooLargeError, bare_content_id, package, read_package
from esb.exchange import Attachment
from tests.soap_client import Part, mtom

ROOT = b'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>'


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(value: str, body: bytes, tmp_path: Path, *, size: int = 7, **limits: int):  # type: ignore[no-untyped-def]
    options = {"max_xml": 10_000, "max_body": 1_000_000, **limits}
    return await read_package(pieces(body, size), value, spool_dir=tmp_path / "spool", **options)


@pytest.mark.parametrize("size", [1, 3, 64, 100_000])
async def test_parts_survive_any_chunking(tmp_path: Path, size: int) -> None:
    # Data that looks like a boundary but is not one, CRLFs at the edges of parts.
    tricky = b"\r\n--uuid:not-the-boundary\r\n" + bytes(range(256)) + b"\r\n"
    value, body = mtom(ROOT, [Part("a@t", "application/octet-stream", tricky), Part("b@t", "text/plain", b"")])
    got = await read(value, b"preamble to ignore\r\n" + body + b"epilogue to ignore\r\n", tmp_path, size=size)
    assert got.root == ROOT and got.root_type.startswith("application/xop+xml")
    assert [(a.content_id, a.content_type, a.read()) for a in got.attachments] == [
        ("a@t", "application/octet-stream", tricky),
        ("b@t", "text/plain", b""),
    ]
    assert all(a.path is not None and Path(a.path).parent == got.spool for a in got.attachments)
    got.discard()
    assert got.spool is not None and not got.spool.exists()


async def test_root_named_by_start_may_come_later_and_headers_fold(tmp_path: Path) -> None:
    value, _ = mtom(ROOT, [], root_id="the-root@t")
    boundary = value.split('boundary="', 1)[1].split('"', 1)[0]
    root_part = (
        f'--{boundary}\r\nContent-Type: application/xop+xml;\r\n\ttype="application/soap+xml"\r\n'
        "Content-ID: <the-root@t>\r\n\r\n"
    ).encode() + ROOT
    other = f"--{boundary}\r\nContent-Type: text/plain\r\nContent-ID: <a@t>\r\n\r\nfirst".encode()
    reordered = other + b"\r\n" + root_part + f"\r\n--{boundary}--".encode()  # no CRLF at the very end
    got = await read(value, reordered, tmp_path)
    assert got.root == ROOT and got.root_type == 'application/xop+xml; type="application/soap+xml"'
    assert [a.content_id for a in got.attachments] == ["a@t"]


async def test_memory_limit_keeps_small_parts_in_memory(tmp_path: Path) -> None:
    value, body = mtom(ROOT, [Part("s@t", "text/plain", b"small"), Part("l@t", "text/plain", b"L" * 5000)])
    got = await read_package(
        pieces(body, 512), value, spool_dir=tmp_path, max_xml=10_000, max_body=100_000, memory_limit=1000
    )
    small, large = got.attachments
    assert small.data == b"small" and small.path is None
    assert large.path is not None and large.read() == b"L" * 5000


ID = b"Content-ID: <a@t>"
START = 'start="<root.message@esb.test>"'
#: (in the Content-Type: old, new), (in the body: old, new), error, message
BROKEN = [
    (None, (b"--\r\n", b""), MtomError, "ends inside a header"),
    (None, (ID, b"Content-ID: <root.message@esb.test>"), MtomError, "two MIME parts"),
    (None, (ID + b"\r\n", b""), MtomError, "has no Content-ID"),
    (None, (ID, ID + b"\r\nX-Long: " + b"y" * 9000), MtomError, "longer than"),
    (None, (ID, b"Broken header line"), MtomError, "Name: value"),
    ((START, 'start="<other@t>"'), None, MtomError, "no root part <other@t>"),
    (None, (b"application/xop+xml; charset", b"text/xml; charset"), MtomError, "root part must be"),
    (None, (b"hello", b"x" * 2_000_000), TooLargeError, "larger than the 1000000 bytes"),
    (None, (b"<s:Envelope", b"<s:Envelope a='" + b"z" * 20_000 + b"'"), TooLargeError, "envelope is larger"),
    (("multipart/related", "multipart/mixed"), None, MtomError, "multipart/related"),
]


@pytest.mark.parametrize(("in_type", "in_body", "error", "text"), BROKEN)
async def test_broken_packages(
    tmp_path: Path,
    in_type: tuple[str, str] | None,
    in_body: tuple[bytes, bytes] | None,
    error: type[Exception],
    text: str,
) -> None:
    value, body = mtom(ROOT, [Part("a@t", "text/plain", b"hello")])
    if in_type:
        value = value.replace(*in_type)
    if in_body:
        body = body.replace(*in_body)
    with pytest.raises(error, match=text):
        await read(value, body, tmp_path, size=4096)
    spool = tmp_path / "spool"
    assert not spool.exists() or not any(spool.iterdir()), "spooled parts left behind"


async def test_truncated_package(tmp_path: Path) -> None:
    value, body = mtom(ROOT, [Part("a@t", "text/plain", b"hello")])
    with pytest.raises(MtomError, match="ends inside a part"):
        await read(value, body[: body.index(b"hello") + 3], tmp_path)


async def test_writer_round_trip_with_exact_length(tmp_path: Path) -> None:
    on_disk = tmp_path / "doc.bin"
    on_disk.write_bytes(b"\x00\r\n--MIMEBoundary" * 10_000)
    attachments = [
        Attachment("f@t", "application/dicom", path=str(on_disk)),
        Attachment("m@t", "text/plain", data=b"m"),
    ]
    outgoing = package(ROOT, attachments, version="1.2", action="urn:a")
    body = b"".join([chunk async for chunk in outgoing.chunks()])
    assert len(body) == outgoing.length
    assert 'type="application/xop+xml"' in outgoing.content_type and 'action="urn:a"' in outgoing.content_type
    got = await read(outgoing.content_type, body, tmp_path, size=1000)
    assert got.root == ROOT
    assert [(a.content_id, a.read()) for a in got.attachments] == [("f@t", on_disk.read_bytes()), ("m@t", b"m")]
    with pytest.raises(ValueError, match="cannot go in a MIME header"):
        package(ROOT, [Attachment("a>\r\nX-Evil: 1", "text/plain", data=b"")], version="1.2")


def test_bare_content_ids() -> None:
    assert bare_content_id("<a%40b>") == "a@b"
    assert bare_content_id("cid:doc%201%40esb.test") == "doc 1@esb.test"
    assert bare_content_id(" <x@y> ") == "x@y"
