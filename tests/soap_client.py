"""SOAP for tests: build SOAP and MTOM requests, POST them, read the answers; zeep that sends MTOM.

Replies are split with requests-toolbelt's ``MultipartDecoder``, not with the
adapter's own parser, so a test checks our MTOM against an independent reader.

- :func:`envelope` / :func:`mtom` build raw requests (an XML declaration on the
  root part, URL-encoded ``cid:`` hrefs, a ``start`` parameter or not);
- :func:`post` and :func:`soap_call` send them with aiohttp and return a :class:`Reply`;
- :class:`MtomTransport` is a zeep Transport that turns the base64 content of
  chosen elements (XDS ``Document`` by default) into ``xop:Include`` + MIME parts;
  zeep itself reads MTOM replies. zeep is synchronous: call it with
  ``await asyncio.to_thread(...)`` from an async test, or the engine's loop stalls.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import zeep
import zeep.transports
from lxml import etree
from requests_toolbelt.multipart.decoder import MultipartDecoder
from zeep.wsdl.utils import etree_to_string

from adapters.soap.envelope import ANONYMOUS, SOAP11, SOAP12, WSA, XOP, read_fault
from adapters.soap.mtom import bare_content_id, content_type_params
from esb.errors import SoapFaultError

XDS = "urn:ihe:iti:xds-b:2007"
XDS_DOCUMENT = f"{{{XDS}}}Document"


@dataclass
class Part:
    content_id: str
    content_type: str
    data: bytes


def envelope(
    payload: bytes,
    *,
    action: str,
    version: str = "1.2",
    message_id: str | None = None,
    to: str = "",
    reply_to: str = ANONYMOUS,
    header: bytes = b"",
    declaration: bool = True,
) -> bytes:
    """A request envelope with WS-Addressing around ``payload`` (raw XML bytes of one element)."""
    ns = SOAP12 if version == "1.2" else SOAP11
    must = "true" if version == "1.2" else "1"
    message_id = message_id or f"urn:uuid:{uuid.uuid4()}"
    blocks = [f'<a:Action s:mustUnderstand="{must}">{action}</a:Action>', f"<a:MessageID>{message_id}</a:MessageID>"]
    if reply_to:
        blocks.append(f"<a:ReplyTo><a:Address>{reply_to}</a:Address></a:ReplyTo>")
    if to:
        blocks.append(f'<a:To s:mustUnderstand="{must}">{to}</a:To>')
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n' if declaration else b""
    return (
        head
        + f'<s:Envelope xmlns:s="{ns}" xmlns:a="{WSA}"><s:Header>{"".join(blocks)}'.encode()
        + header
        + b"</s:Header><s:Body>"
        + payload
        + b"</s:Body></s:Envelope>"
    )


def content_type(version: str = "1.2", action: str = "") -> str:
    """The Content-Type of a plain SOAP request."""
    if version == "1.1":
        return "text/xml; charset=utf-8"
    return "application/soap+xml; charset=utf-8" + (f'; action="{action}"' if action else "")


def include(content_id: str) -> str:
    """``<xop:Include href="cid:..."/>`` with the content id URL-encoded, as RFC 2392 wants."""
    return f'<xop:Include xmlns:xop="{XOP}" href="cid:{quote(content_id, safe="")}"/>'


def mtom(
    root: bytes,
    parts: Sequence[Part],
    *,
    version: str = "1.2",
    action: str = "",
    start: bool = True,
    boundary: str | None = None,
    root_id: str = "root.message@esb.test",
) -> tuple[str, bytes]:
    """``(Content-Type, body)`` of an MTOM package: ``root`` first, then ``parts``."""
    boundary = boundary or f"uuid:{uuid.uuid4()}"
    soap_type = "application/soap+xml" if version == "1.2" else "text/xml"
    chunks = [
        f"--{boundary}\r\n".encode(),
        f'Content-Type: application/xop+xml; charset=UTF-8; type="{soap_type}"\r\n'.encode(),
        b"Content-Transfer-Encoding: binary\r\n",
        f"Content-ID: <{root_id}>\r\n\r\n".encode(),
        root,
        b"\r\n",
    ]
    for part in parts:
        chunks += [
            f"--{boundary}\r\nContent-Type: {part.content_type}\r\nContent-Transfer-Encoding: binary\r\n".encode(),
            f"Content-ID: <{part.content_id}>\r\n\r\n".encode(),
            part.data,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    value = f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; start-info="{soap_type}"'
    if start:
        value += f'; start="<{root_id}>"'
    if action and version == "1.2":
        value += f'; action="{action}"'
    return value, b"".join(chunks)


@dataclass
class Reply:
    """An answer from a SOAP endpoint, split and parsed."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    root: Any = None
    parts: dict[str, Part] = field(default_factory=dict)
    root_type: str = ""

    @property
    def version(self) -> str:
        return "1.2" if etree.QName(self.root).namespace == SOAP12 else "1.1"

    def _header(self, name: str) -> str:
        ns = etree.QName(self.root).namespace
        return (self.root.findtext(f"{{{ns}}}Header/{{{WSA}}}{name}") or "").strip()

    @property
    def action(self) -> str:
        return self._header("Action")

    @property
    def relates_to(self) -> str:
        return self._header("RelatesTo")

    @property
    def message_id(self) -> str:
        return self._header("MessageID")

    @property
    def payload(self) -> Any:
        ns = etree.QName(self.root).namespace
        return self.root.find(f"{{{ns}}}Body")[0]

    @property
    def fault(self) -> SoapFaultError | None:
        ns = etree.QName(self.root).namespace
        node = self.root.find(f"{{{ns}}}Body/{{{ns}}}Fault")
        return None if node is None else read_fault(node, self.version)

    @property
    def is_mtom(self) -> bool:
        return self.headers.get("Content-Type", "").startswith("multipart/related")


def parse_reply(status: int, headers: Mapping[str, str], body: bytes) -> Reply:
    reply = Reply(status, headers, body)
    value = headers.get("Content-Type", "")
    if value.startswith("multipart/related"):
        decoder = MultipartDecoder(body, value)
        start = bare_content_id(content_type_params(value)[1].get("start", ""))
        for index, part in enumerate(decoder.parts):
            part_headers = {k.decode().lower(): v.decode() for k, v in part.headers.items()}
            cid = bare_content_id(part_headers.get("content-id", ""))
            if (cid == start) if start else index == 0:
                reply.root = etree.fromstring(part.content)
                reply.root_type = part_headers.get("content-type", "")
            else:
                reply.parts[cid] = Part(cid, part_headers.get("content-type", ""), part.content)
    elif body.strip().startswith(b"<"):
        reply.root = etree.fromstring(body)
    return reply


async def post(
    session: aiohttp.ClientSession, url: str, body: Any, content_type: str, headers: Mapping[str, str] | None = None
) -> Reply:
    """POST a raw body (bytes or an async iterator of bytes) and parse the answer."""
    async with session.post(url, data=body, headers={"Content-Type": content_type, **(headers or {})}) as answer:
        data = await answer.read()
        return parse_reply(answer.status, answer.headers, data)


async def soap_call(
    session: aiohttp.ClientSession,
    url: str,
    payload: bytes,
    *,
    action: str,
    version: str = "1.2",
    parts: Sequence[Part] = (),
    use_mtom: bool | None = None,
    **envelope_options: Any,
) -> Reply:
    """A request with WS-Addressing; MTOM when there are parts (or ``use_mtom``)."""
    data = envelope(payload, action=action, version=version, **envelope_options)
    extra = {"SOAPAction": f'"{action}"'} if version == "1.1" else {}
    if parts or use_mtom:
        value, data = mtom(data, parts, version=version, action=action)
        return await post(session, url, data, value, extra)
    return await post(session, url, data, content_type(version, action), extra)


class MtomTransport(zeep.transports.Transport):
    """zeep's Transport, sending the base64 content of ``optimize`` elements as MTOM parts."""

    def __init__(self, *args: Any, optimize: Iterable[str] = (XDS_DOCUMENT,), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optimize = tuple(optimize)
        #: the parts of the last request, for assertions
        self.sent: list[Part] = []

    def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Any:
        parts: list[Part] = []
        for element in list(envelope.iter(*self.optimize)):
            if not (element.text or "").strip():
                continue
            content_id = f"{len(parts) + 1}.{uuid.uuid4().hex}@esb.test"
            data = base64.b64decode(element.text)
            element.text = None
            node = etree.SubElement(element, f"{{{XOP}}}Include", nsmap={"xop": XOP})
            node.set("href", "cid:" + quote(content_id, safe=""))
            parts.append(Part(content_id, "application/octet-stream", data))
        self.sent = parts
        media_type, params = content_type_params(headers.get("Content-Type", "text/xml"))
        version = "1.2" if media_type == "application/soap+xml" else "1.1"
        value, body = mtom(etree_to_string(envelope), parts, version=version, action=params.get("action", ""))
        return self.post(address, body, {**headers, "Content-Type": value})


def zeep_client(wsdl: str, *, mtom_elements: Iterable[str] = (XDS_DOCUMENT,), mtom: bool = True) -> zeep.Client:
    """A zeep client for ``wsdl`` (a file or a URL); with ``mtom`` its requests go out MTOM-packaged."""
    transport = MtomTransport(optimize=mtom_elements) if mtom else zeep.transports.Transport()
    return zeep.Client(wsdl, transport=transport)
