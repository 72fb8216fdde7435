"""Answers: JSON errors, DICOM JSON, and multipart/related written part by part as the bytes come.

A study retrieve can be gigabytes, so a multipart answer is a chunked
``StreamResponse``: each part's bytes go out as they are read from the archive.
Once the first part is out the status cannot change any more; a failure then
breaks the connection before the chunked body's end, so the client sees an
incomplete answer instead of taking a cut one for complete.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from aiohttp import web

log = logging.getLogger("esb.adapters.dicomweb")

DICOM_JSON = "application/dicom+json"


@dataclass
class Call:
    """One request with what every answer to it needs: the service's base URL and CORS headers."""

    request: web.Request
    base: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def head(self) -> bool:
        """A HEAD request: streamed answers send their headers only (aiohttp would write the body)."""
        return self.request.method == "HEAD"


class HttpError(Exception):
    """Answered as ``status`` with ``{"error": text}``."""

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.headers = status, text, headers or {}


def error(call: Call, status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"error": text}).encode()
    return web.Response(
        status=status, body=body, content_type="application/json", headers={**call.headers, **(headers or {})}
    )


def dicom_json(call: Call, value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    answer = web.Response(status=status, body=body, headers={**call.headers, **(headers or {})})
    answer.content_type = DICOM_JSON
    return answer


def empty(call: Call, status: int = 204) -> web.Response:
    return web.Response(status=status, headers=call.headers)


class MultipartStream:
    """``multipart/related; type=...`` written to the client one part at a time."""

    def __init__(self, call: Call, part_type: str, *, status: int = 200) -> None:
        self.call = call
        self.boundary = uuid.uuid4().hex
        content_type = f'multipart/related; type="{part_type}"; boundary={self.boundary}'
        self.response = web.StreamResponse(status=status, headers={**call.headers, "Content-Type": content_type})
        if not call.head:
            self.response.enable_chunked_encoding()
        self.parts = 0

    async def start(self) -> None:
        await self.response.prepare(self.call.request)

    async def part(self, content_type: str, content: bytes | AsyncIterator[bytes], location: str = "") -> None:
        if self.call.head:
            return
        head = f"--{self.boundary}\r\nContent-Type: {content_type}\r\n"
        if location:
            head += f"Content-Location: {location}\r\n"
        await self.response.write(head.encode("utf-8") + b"\r\n")
        if isinstance(content, bytes):
            await self.response.write(content)
        else:
            async for chunk in content:
                await self.response.write(chunk)
        await self.response.write(b"\r\n")
        self.parts += 1

    async def finish(self) -> web.StreamResponse:
        if not self.call.head:
            await self.response.write(f"--{self.boundary}--\r\n".encode("ascii"))
        await self.response.write_eof()
        return self.response

    async def abort(self, why: BaseException) -> NoReturn:
        """Break the answer off (it is too late for an error status)."""
        cut(self.call, why, self.parts)


def cut(call: Call, why: BaseException, parts: int = 0) -> NoReturn:
    """Break a started answer off: aiohttp drops the connection for a ConnectionError, quietly."""
    log.warning("%s %s: answer cut after %d parts: %s", call.request.method, call.request.path, parts, why)
    raise ConnectionResetError("answer cut") from why
