"""The sending side: frame the message, wait for its ACK, map the ACK code to a delivery result.

Connections come from python-hl7's asyncio streams (``open_hl7_connection``,
``writeblock``/``readblock``) and are pooled per destination; a connection
that broke, timed out or answered out of step is closed, never reused, and an
idle one the peer closed meanwhile is replaced once before the send counts as
failed. AA/CA is a reply; AE/CE and AR/CR follow ``on_ae``/``on_ar``:
``retry`` raises :class:`~esb.errors.AckError` (retried with backoff),
``dead`` raises :class:`~esb.errors.ApplicationRejectError` (dead letter at
once), ``accept`` takes the ACK as a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from hl7.mllp import open_hl7_connection
from hl7.mllp.exceptions import InvalidBlockError

from adapters.mllp.options import MllpOptions
from esb.components import Producer
from esb.errors import AckError, ApplicationRejectError, Hl7Error, MllpError
from esb.exchange import Exchange
from transforms.hl7v2.ack import Ack, read_ack
from transforms.hl7v2.message import normalize_segments, read_header

_BROKEN = (ConnectionError, OSError, asyncio.IncompleteReadError, InvalidBlockError, ValueError, ssl.SSLError)


@dataclass
class _Link:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(*_BROKEN):
            await self.writer.wait_closed()


class MllpProducer(Producer):
    def __init__(self, options: MllpOptions, ssl_context: Callable[[], ssl.SSLContext] | None = None) -> None:
        self.options = options
        self.where = f"mllp://{options.host}:{options.port}"
        self._ssl_factory = ssl_context
        self._ssl: ssl.SSLContext | None = None
        self._idle: list[_Link] = []
        self._slots: asyncio.Semaphore | None = None

    async def _connect(self) -> _Link:
        o = self.options
        context = None
        if self._ssl_factory is not None:
            if self._ssl is None:
                try:
                    self._ssl = self._ssl_factory()
                except OSError as exc:  # ssl.SSLError included: unreadable or mismatched PEM files
                    raise MllpError(f"{self.where}: cannot load TLS files: {exc}") from exc
            context = self._ssl
        reader, writer = await open_hl7_connection(o.host, o.port, limit=o.max_size, ssl=context)
        return _Link(reader, writer)

    async def send(self, exchange: Exchange) -> Exchange | None:
        body = normalize_segments(exchange.body)
        try:
            control_id = read_header(body, self.options.codec).control_id
        except Hl7Error as exc:
            raise ApplicationRejectError(f"{self.where}: not an HL7 v2 message: {exc}", ack_code="AR") from exc
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.options.pool)
        async with self._slots:
            ack, answer = await self._round_trip(body, control_id)
        return self._result(ack, answer)

    async def _round_trip(self, body: bytes, control_id: str) -> tuple[Ack, bytes]:
        """Send one frame and read its ACK, on a pooled connection (replaced once if it went stale).

        Only a connection that answered in step goes back to the pool.
        """
        for reused in (True, False):
            link = self._take_idle() if reused else None
            if reused and link is None:
                continue
            try:
                async with asyncio.timeout(float(self.options.timeout)):
                    if link is None:
                        link = await self._connect()
                    link.writer.writeblock(body)  # type: ignore[attr-defined]
                    await link.writer.drain()
                    answer: bytes = await link.reader.readblock()  # type: ignore[attr-defined]
            except TimeoutError as exc:
                if link is not None:
                    await link.close()
                raise MllpError(f"{self.where}: no ACK within {self.options.timeout:g}s") from exc
            except _BROKEN as exc:
                if link is not None:
                    await link.close()
                if reused and isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
                    continue  # the peer closed an idle connection: once more on a fresh one
                raise MllpError(f"{self.where}: {type(exc).__name__}: {exc}") from exc
            try:
                ack = read_ack(answer, self.options.codec)
            except Hl7Error as exc:
                await link.close()
                raise MllpError(f"{self.where}: the answer is not an HL7 ACK: {exc}") from exc
            if ack.control_id != control_id:
                await link.close()
                raise MllpError(f"{self.where}: ACK for control id '{ack.control_id}' while waiting for '{control_id}'")
            self._idle.append(link)
            return ack, answer
        raise AssertionError("unreachable: the second pass always returns or raises")

    def _take_idle(self) -> _Link | None:
        while self._idle:
            link = self._idle.pop()
            if link.usable():
                return link
            link.writer.close()
        return None

    def _result(self, ack: Ack, answer: bytes) -> Exchange:
        reply = Exchange(
            body=answer,
            headers={
                "hl7-ack-code": ack.code,
                "hl7-control-id": ack.header.control_id,
                "charset": ack.header.codec,
                "mllp-peer": f"{self.options.host}:{self.options.port}",
            },
        )
        if ack.code in ("AA", "CA"):
            return reply
        policy = self.options.on_ar if ack.code in ("AR", "CR") else self.options.on_ae
        if policy == "accept":
            return reply
        said = f"{self.where} answered {ack.code}" + (f" {ack.error_code}" if ack.error_code else "")
        said += f": {ack.text[:200]}" if ack.text else ""
        if ack.code not in ("AE", "CE", "AR", "CR"):
            raise ApplicationRejectError(f"{said} (not an ACK code)", ack_code=ack.code, text=ack.text)
        error = ApplicationRejectError if policy == "dead" else AckError
        raise error(said, ack_code=ack.code, text=ack.text, error_code=ack.error_code)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for link in idle:
            await link.close()
