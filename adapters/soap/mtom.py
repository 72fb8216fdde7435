"""MTOM/XOP packages (multipart/related; type="application/xop+xml"), read and written as streams.

Reading is a hand-written multipart parser rather than aiohttp's
``MultipartReader``: that one reads the preamble, epilogue and boundary lines
with unbounded ``readline`` calls (a body without line breaks grows one line
without limit) and pushes data back with the deprecated
``StreamReader.unread_data``. Here every byte is counted against ``max_body``,
header blocks have a size cap, and the parser works on any async chunk source,
so the consumer (a request) and the client (a reply) share it.

The root part (the envelope) is read into memory up to ``max_xml``; every other
part goes to a spool file as it arrives (or stays in memory when it is smaller
than ``memory_limit``, which only the client uses), so a 500 MB document costs
a buffer, not 500 MB.
"""

from __future__ import annotations

import asyncio
import email.message
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from esb.errors import SoapFaultError
from esb.exchange import Attachment

XOP_MEDIA_TYPE = "application/xop+xml"
#: one header line, and one part's header block
MAX_HEADER_LINE = 8 * 1024
MAX_HEADER_BLOCK = 32 * 1024
#: bytes read from disk (or buffered before a disk write) at a time
FILE_CHUNK = 1024 * 1024
#: MIME parts in one package (an XDS submission has one per document)
MAX_PARTS = 10_000


class MtomError(SoapFaultError):
    """A malformed MIME package: answered with a Sender Fault."""


class TooLargeError(SoapFaultError):
    """A message over max_xml or max_body: answered 413 with a Sender Fault."""


def content_type_params(value: str) -> tuple[str, dict[str, str]]:
    """``(media type, {param: value})`` of a Content-Type, quoted values unquoted, names lower-cased."""
    message = email.message.Message()
    message["content-type"] = value
    params = message.get_params() or []
    return message.get_content_type(), {str(k).lower(): str(v) for k, v in params[1:]}


def bare_content_id(value: str) -> str:
    """``<a%40b>`` or ``cid:a%40b`` -> ``a@b`` (the form :class:`Attachment` keeps)."""
    value = value.strip()
    if value.lower().startswith("cid:"):
        value = value[4:]
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return unquote(value.strip())


class PartStream:
    """Splits a multipart body into parts while it arrives; parts must be read in order.

    ``next_part()`` gives the next part's headers (names lower-cased) or None at
    the end; ``read()`` gives its content in pieces, ``b""`` when it is done.
    """

    def __init__(self, chunks: AsyncIterator[bytes], boundary: str, *, limit: int) -> None:
        self._chunks = chunks
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        # A leading CRLF lets the first boundary match like every other one.
        self._buf = bytearray(b"\r\n")
        self._limit = limit
        self._total = 0
        self._state = "preamble"  # -> delimiter -> body -> delimiter ... -> done
        self._eof = False

    async def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            self._eof = True
            return False
        self._total += len(chunk)
        if self._total > self._limit:
            raise TooLargeError(f"the message is larger than the {self._limit} bytes accepted here")
        self._buf += chunk
        return True

    async def _line(self, limit: int) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            if len(self._buf) > limit:
                raise MtomError(f"a MIME header line is longer than {limit} bytes")
            if not await self._fill():
                raise MtomError("the MIME package ends inside a header")
        if end > limit:
            raise MtomError(f"a MIME header line is longer than {limit} bytes")
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    async def next_part(self) -> dict[str, str] | None:
        while self._state == "body":
            await self.read()
        if self._state == "preamble":
            keep = len(self._delimiter) - 1
            while (found := self._buf.find(self._delimiter)) < 0:
                if len(self._buf) > keep:
                    del self._buf[:-keep]  # the preamble is ignored, never kept
                if not await self._fill():
                    raise MtomError("the MIME boundary named in the Content-Type is not in the message")
            del self._buf[: found + len(self._delimiter)]
            self._state = "delimiter"
        if self._state == "done":
            return None
        while len(self._buf) < 2 and await self._fill():
            pass
        if self._buf.startswith(b"--"):  # the close delimiter; the CRLF after it is optional
            self._state = "done"
            await self._drain_epilogue()
            return None
        rest = await self._line(MAX_HEADER_LINE)
        if rest.strip(b" \t"):
            raise MtomError("unexpected text after a MIME boundary")
        headers = await self._headers()
        self._state = "body"
        return headers

    async def _headers(self) -> dict[str, str]:
        lines: list[bytes] = []
        size = 0
        while line := await self._line(MAX_HEADER_LINE):
            size += len(line) + 2
            if size > MAX_HEADER_BLOCK:
                raise MtomError(f"a MIME part's headers are larger than {MAX_HEADER_BLOCK} bytes")
            if line[:1] in (b" ", b"\t") and lines:
                lines[-1] += b" " + line.strip()
            else:
                lines.append(line)
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name.strip():
                raise MtomError("a MIME part header is not 'Name: value'")
            headers[name.strip().lower()] = value.strip()
        return headers

    async def read(self) -> bytes:
        """The next piece of the current part's content; ``b""`` at its end."""
        if self._state != "body":
            return b""
        keep = len(self._delimiter) - 1
        while True:
            found = self._buf.find(self._delimiter)
            if found >= 0:
                data = bytes(self._buf[:found])
                del self._buf[: found + len(self._delimiter)]
                self._state = "delimiter"
                return data
            safe = len(self._buf) - keep
            if safe > 0:
                data = bytes(self._buf[:safe])
                del self._buf[:safe]
                return data
            if not await self._fill():
                raise MtomError("the MIME package ends inside a part (no closing boundary)")

    async def _drain_epilogue(self) -> None:
        self._buf.clear()
        while await self._fill():
            self._buf.clear()


@dataclass
class Package:
    """A received MTOM package: the root part in memory, the other parts as attachments."""

    root: bytes
    root_type: str
    attachments: list[Attachment] = field(default_factory=list)
    spool: Path | None = None

    def discard(self) -> None:
        """Remove the spooled parts (a request refused before it was journaled)."""
        discard_spool(self.spool)


def discard_spool(spool: Path | None) -> None:
    if spool is not None:
        shutil.rmtree(spool, ignore_errors=True)


class _Spooler:
    """Where parts go: a directory made on first use, one file per part."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.directory: Path | None = None

    def new_file(self, index: int) -> Path:
        if self.directory is None:
            base = self.root if self.root is not None else Path(_default_spool_root())
            base.mkdir(parents=True, exist_ok=True)
            self.directory = base / uuid.uuid4().hex
            self.directory.mkdir()
        return self.directory / f"part-{index}"


def _default_spool_root() -> str:
    return str(Path(tempfile.gettempdir()) / "esb-soap")


async def _read_root(stream: PartStream, max_xml: int) -> bytes:
    data = bytearray()
    while piece := await stream.read():
        data += piece
        if len(data) > max_xml:
            raise TooLargeError(f"the SOAP envelope is larger than the {max_xml} bytes accepted here")
    return bytes(data)


async def _write(handle: BinaryIO, data: bytes) -> None:
    await asyncio.to_thread(handle.write, data)


async def _store(
    stream: PartStream, content_id: str, content_type: str, spooler: _Spooler, index: int, memory_limit: int
) -> Attachment:
    buffer = bytearray()
    handle: BinaryIO | None = None
    path: Path | None = None
    try:
        while piece := await stream.read():
            buffer += piece
            if handle is None and len(buffer) > memory_limit:
                path = spooler.new_file(index)
                handle = open(path, "wb")  # closed in finally
            if handle is not None and len(buffer) >= FILE_CHUNK:
                await _write(handle, bytes(buffer))
                buffer.clear()
        if handle is None and memory_limit > 0:
            return Attachment(content_id, content_type, data=bytes(buffer))
        if handle is None:
            path = spooler.new_file(index)
            handle = open(path, "wb")  # closed in finally
        if buffer:
            await _write(handle, bytes(buffer))
    finally:
        if handle is not None:
            handle.close()
    return Attachment(content_id, content_type, path=str(path))


async def read_package(
    chunks: AsyncIterator[bytes],
    content_type: str,
    *,
    spool_dir: Path | None,
    max_xml: int,
    max_body: int,
    memory_limit: int = 0,
) -> Package:
    """Read an MTOM package; parts above ``memory_limit`` bytes (all, when 0) go to files under ``spool_dir``."""
    media_type, params = content_type_params(content_type)
    if media_type != "multipart/related" or not params.get("boundary"):
        raise MtomError(f"an MTOM message is multipart/related with a boundary (got '{content_type}')")
    if params.get("type", "").lower() != XOP_MEDIA_TYPE:
        raise MtomError(f'multipart/related without type="{XOP_MEDIA_TYPE}" is not MTOM')
    start = bare_content_id(params.get("start", ""))
    stream = PartStream(chunks, params["boundary"], limit=max_body)
    spooler = _Spooler(spool_dir)
    root: bytes | None = None
    root_type = ""
    attachments: list[Attachment] = []
    seen: set[str] = {start} if start else set()
    try:
        index = 0
        while (headers := await stream.next_part()) is not None:
            index += 1
            encoding = headers.get("content-transfer-encoding", "binary").lower()
            if encoding not in ("binary", "8bit", "7bit"):
                raise MtomError(f"MIME part {index}: Content-Transfer-Encoding '{encoding}' (MTOM parts are binary)")
            content_id = bare_content_id(headers.get("content-id", ""))
            part_type = headers.get("content-type", "application/octet-stream")
            if root is None and (content_id == start if start else index == 1):
                root, root_type = await _read_root(stream, max_xml), part_type
                seen.add(content_id)
                continue
            if not content_id:
                raise MtomError(f"MIME part {index} has no Content-ID, so no xop:Include can refer to it")
            if content_id in seen:
                raise MtomError(f"two MIME parts have Content-ID <{content_id}>")
            if len(seen) >= MAX_PARTS:
                raise MtomError(f"the MTOM package has more than {MAX_PARTS} parts")
            seen.add(content_id)
            attachments.append(await _store(stream, content_id, part_type, spooler, index, memory_limit))
        if root is None:
            raise MtomError(f"the MTOM package has no root part{f' <{start}>' if start else ''}")
        if content_type_params(root_type)[0] != XOP_MEDIA_TYPE:
            raise MtomError(f"the MTOM root part must be {XOP_MEDIA_TYPE} (got '{root_type}')")
    except BaseException:
        discard_spool(spooler.directory)
        raise
    return Package(root, root_type, attachments, spooler.directory)


# -- writing -----------------------------------------------------------------------


def _header_safe(value: str, what: str) -> str:
    if any(c in value for c in '\r\n<>"'):
        raise ValueError(f"{what} '{value!r}' cannot go in a MIME header")
    return value


@dataclass
class OutgoingPackage:
    """An MTOM package to send: its Content-Type, exact length and content as a stream."""

    content_type: str
    length: int
    parts: list[tuple[bytes, Attachment | bytes]]
    closing: bytes

    async def chunks(self) -> AsyncIterator[bytes]:
        for head, content in self.parts:
            yield head
            if isinstance(content, bytes):
                yield content
            elif content.data is not None:
                yield content.data
            else:
                handle = await asyncio.to_thread(content.open)
                try:
                    while piece := await asyncio.to_thread(handle.read, FILE_CHUNK):
                        yield piece
                finally:
                    handle.close()
            yield b"\r\n"
        yield self.closing


def package(envelope: bytes, attachments: Sequence[Attachment], *, version: str, action: str = "") -> OutgoingPackage:
    """MTOM around ``envelope`` (its xop:Include hrefs name the attachments' content ids)."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root_id = f"root.message@{uuid.uuid4().hex}.esb"
    soap_type = "application/soap+xml" if version == "1.2" else "text/xml"
    root_head = (
        f"--{boundary}\r\n"
        f'Content-Type: {XOP_MEDIA_TYPE}; charset=UTF-8; type="{soap_type}"\r\n'
        "Content-Transfer-Encoding: binary\r\n"
        f"Content-ID: <{root_id}>\r\n\r\n"
    )
    parts: list[tuple[bytes, Attachment | bytes]] = [(root_head.encode("ascii"), envelope)]
    for attachment in attachments:
        head = (
            f"--{boundary}\r\n"
            f"Content-Type: {_header_safe(attachment.content_type or 'application/octet-stream', 'content type')}\r\n"
            "Content-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{_header_safe(attachment.content_id, 'content id')}>\r\n\r\n"
        )
        parts.append((head.encode("utf-8"), attachment))
    closing = f"--{boundary}--\r\n".encode("ascii")
    length = len(closing) + sum(
        len(head) + (len(c) if isinstance(c, bytes) else c.size) + 2 for head, c in parts
    )  # fmt: skip
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="{XOP_MEDIA_TYPE}"; '
        f'start="<{root_id}>"; start-info="{soap_type}"'
    )
    if action and version == "1.2":
        content_type += f'; action="{_header_safe(action, "action")}"'
    return OutgoingPackage(content_type, length, parts, closing)
