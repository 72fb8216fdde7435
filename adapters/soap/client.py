"""Calling a SOAP endpoint: one request, one reply or a Fault, MTOM both ways.

:func:`call` is what the ``soap:`` producer sends with, and what a service uses
to talk to a remote actor while it handles a request (the XDS repository
registering with a remote registry, ITI-42). The request is built with
WS-Addressing (To, Action, MessageID, ReplyTo anonymous); attachments go out as
MTOM parts streamed from their files; reply parts above ``memory_limit`` are
spooled to files the caller owns.

Errors: a Fault reply raises :class:`SoapFaultError` (code, subcode, reason as
the peer sent them); a peer that cannot be reached, times out or answers 5xx
without a Fault raises :class:`DeliveryError` (worth retrying); 4xx without a
Fault, or a payload that is not XML, :class:`PermanentDeliveryError`.
"""

from __future__ import annotations

import ssl as _ssl
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from lxml import etree

from adapters.soap.envelope import MAX_XML, PARSER, parse_envelope, request
from adapters.soap.mtom import Package, content_type_params, package, read_package
from esb.errors import DeliveryError, PermanentDeliveryError, SoapFaultError
from esb.exchange import ATTACHMENTS_HEADER, Attachment, attachments_header

#: reply parts up to this size stay in memory; larger ones are spooled
MEMORY_LIMIT = 1024 * 1024
MAX_BODY = 1024 * 1024 * 1024
RETRIED_STATUSES = frozenset({408, 429})
READ_CHUNK = 256 * 1024
SOAP_MEDIA_TYPES = ("application/soap+xml", "text/xml")


def _snippet(body: bytes) -> str:
    text = " ".join(body[:400].decode("utf-8", errors="replace").split())
    return f": {text[:200]}" if text else ""


def _status_error(where: str, status: int, reason: str, body: bytes) -> DeliveryError:
    text = f"{where} answered {status} {reason}".rstrip() + _snippet(body)
    if status in RETRIED_STATUSES or status >= 500:
        return DeliveryError(text)
    return PermanentDeliveryError(text)


async def _read_limited(answer: aiohttp.ClientResponse, limit: int, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise DeliveryError(f"{where}: the reply is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def call(
    url: str,
    payload: bytes,
    *,
    action: str,
    attachments: Sequence[Attachment] = (),
    mtom: bool = False,
    version: str = "1.2",
    timeout: float = 30,
    ssl: _ssl.SSLContext | None = None,
    session: aiohttp.ClientSession | None = None,
    spool_dir: Path | None = None,
    memory_limit: int = MEMORY_LIMIT,
    max_xml: int = MAX_XML,
    max_body: int = MAX_BODY,
    wss: Callable[[bytes], bytes] | None = None,
) -> tuple[bytes, list[Attachment], dict[str, str]]:
    """POST ``payload`` (the Body's element) to ``url``; the reply's payload, attachments and headers.

    ``session`` reuses a pooled connection (the producer's); ``spool_dir`` is where
    large reply parts go (default: a temp directory), to be removed by the caller.
    ``wss`` signs the envelope (:class:`adapters.soap.wssecurity.WsSigner`), before
    MTOM packaging: the signature covers the Body with its ``xop:Include`` elements.
    """
    where = f"SOAP {url}"
    try:
        element = etree.fromstring(payload, PARSER)
    except etree.XMLSyntaxError as exc:
        raise PermanentDeliveryError(f"{where}: the payload is not XML: {exc}") from None
    envelope = request(element, version=version, action=action, to=url)
    if wss is not None:
        try:
            envelope = wss(envelope)
        except (OSError, ValueError, SoapFaultError) as exc:  # key unreadable, password variable unset
            raise PermanentDeliveryError(f"{where}: the request cannot be signed: {exc}") from None
    headers: dict[str, str] = {}
    body: bytes | AsyncIterator[bytes]
    if attachments or mtom:
        try:
            outgoing = package(envelope, list(attachments), version=version, action=action)
        except (ValueError, OSError) as exc:
            raise PermanentDeliveryError(f"{where}: attachments cannot be sent: {exc}") from None
        body = outgoing.chunks()
        headers["Content-Type"] = outgoing.content_type
        headers["Content-Length"] = str(outgoing.length)
    else:
        body = envelope
        headers["Content-Type"] = (
            f'application/soap+xml; charset=utf-8; action="{action}"' if version == "1.2" else "text/xml; charset=utf-8"
        )
    if version == "1.1":
        headers["SOAPAction"] = f'"{action}"'
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.post(
            url,
            data=body,
            headers=headers,
            ssl=ssl if ssl is not None else True,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as answer:
            return await _reply(answer, where, spool_dir, memory_limit, max_xml, max_body)
    except TimeoutError as exc:
        raise DeliveryError(f"{where}: no answer within {timeout:g}s") from exc
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            await client.close()


async def _reply(
    answer: aiohttp.ClientResponse, where: str, spool_dir: Path | None, memory_limit: int, max_xml: int, max_body: int
) -> tuple[bytes, list[Attachment], dict[str, str]]:
    status = answer.status
    content_type = answer.headers.get("Content-Type", "")
    media_type = content_type_params(content_type)[0] if content_type else ""
    received: Package | None = None
    try:
        if media_type == "multipart/related":
            received = await read_package(
                answer.content.iter_chunked(READ_CHUNK),
                content_type,
                spool_dir=spool_dir,
                max_xml=max_xml,
                max_body=max_body,
                memory_limit=memory_limit,
            )
            root = received.root
        else:
            root = await _read_limited(answer, max_xml, where)
            if 200 <= status < 300 and not root.strip():
                return b"", [], {"http-status": str(status)}
            if media_type not in SOAP_MEDIA_TYPES:
                raise _status_error(where, status, answer.reason or "", root)
        envelope = parse_envelope(root, max_size=max_xml)
    except SoapFaultError as exc:  # our own parse of their reply failed: not a Fault they sent
        _discard(received)
        raise DeliveryError(f"{where}: the reply is not usable SOAP: {exc.reason}") from None
    except BaseException:
        _discard(received)
        raise
    fault = envelope.fault()
    if fault is not None:
        _discard(received)
        raise fault
    if not 200 <= status < 300:
        _discard(received)
        raise _status_error(where, status, answer.reason or "", root)
    try:
        body: Any = envelope.payload
    except SoapFaultError:
        _discard(received)
        return b"", [], {"http-status": str(status)}
    attachments = received.attachments if received is not None else []
    headers = {
        "content-type": "application/xml",
        "http-status": str(status),
        "soap-version": envelope.version,
        "soap-mtom": "true" if received is not None else "false",
    }
    for name, header in (("Action", "soap-action"), ("MessageID", "soap-message-id"), ("RelatesTo", "soap-relates-to")):
        if envelope.addressing.get(name):
            headers[header] = envelope.addressing[name]
    if any(a.path is not None for a in attachments):
        headers[ATTACHMENTS_HEADER] = attachments_header(attachments)
    return etree.tostring(body, xml_declaration=False, encoding="utf-8"), attachments, headers


def _discard(received: Package | None) -> None:
    if received is not None:
        received.discard()
