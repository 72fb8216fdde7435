"""The unit of work that flows through a route.

An exchange carries the message body as bytes (what the wire gave us, what the
journal stores) plus a lazily parsed view, so an XPath filter on a large SOAP
body parses it once, and a route that never looks inside never parses at all.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from lxml import etree

#: lxml parser for untrusted input: no DTDs, no entities, no network.
SAFE_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


#: header that lists an exchange's file-backed attachments (JSON), so a message
#: resumed from the journal or a queued delivery gets them back
ATTACHMENTS_HEADER = "esb-attachments"

#: property a consumer sets to a key that stays the same when it sees a message
#: again (a broker's redelivery, a staging row re-read): the journal takes the
#: key once per route and answers a repeat as ``duplicate`` (esb.journal.inbound)
DEDUP_KEY = "dedup_key"


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Attachment:
    """A binary part beside the body (MTOM part, DICOM file, ...).

    Small parts live in memory (``data``); large ones were streamed to a file
    (``path``) by the adapter that received them, so a 500 MB document never sits
    in memory. ``content_id`` is bare: no ``cid:``, no angle brackets, URL-decoded.
    """

    content_id: str
    content_type: str
    data: bytes | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.path is None):
            raise ValueError("an attachment has either data or a path")

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else Path(str(self.path)).stat().st_size

    def open(self) -> BinaryIO:
        """A binary stream of the content; the caller closes it."""
        if self.data is not None:
            return io.BytesIO(self.data)
        return open(str(self.path), "rb")

    def read(self) -> bytes:
        """The whole content in memory: only for parts known to be small."""
        if self.data is not None:
            return self.data
        return Path(str(self.path)).read_bytes()


def attachments_header(attachments: list[Attachment]) -> str:
    """The :data:`ATTACHMENTS_HEADER` value for file-backed attachments (in-memory ones are not listed)."""
    listed = [{"cid": a.content_id, "type": a.content_type, "path": a.path} for a in attachments if a.path is not None]
    return json.dumps(listed, separators=(",", ":"))


def attachments_from_headers(headers: dict[str, str]) -> list[Attachment]:
    """The file-backed attachments recorded in ``headers`` (none when the header is absent or broken)."""
    text = headers.get(ATTACHMENTS_HEADER)
    if not text:
        return []
    try:
        items = json.loads(text)
        return [Attachment(str(i["cid"]), str(i["type"]), path=str(i["path"])) for i in items]
    except (ValueError, KeyError, TypeError):
        return []


@dataclass
class Exchange:
    """A message in flight: body, headers, attachments and correlation ids."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    id: str = field(default_factory=new_id)
    correlation_id: str | None = None
    route_id: str | None = None
    #: journal row of the inbound message, once journaled
    message_id: str | None = None
    #: free-form values for steps (the error that on_error handles, ...)
    properties: dict[str, Any] = field(default_factory=dict)
    _xml: Any = field(default=None, repr=False, compare=False)
    _xml_of: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.body, str):
            self.body = self.body.encode("utf-8")
        if self.correlation_id is None:
            self.correlation_id = self.id

    @property
    def text(self) -> str:
        charset = self.headers.get("charset", "utf-8")
        return self.body.decode(charset, errors="replace")

    def xml(self) -> Any:
        """The body parsed as XML (cached until the body changes)."""
        if self._xml is None or self._xml_of is not self.body:
            self._xml = etree.fromstring(self.body, SAFE_XML_PARSER)
            self._xml_of = self.body
        return self._xml

    def set_body(self, value: bytes | str | Any) -> None:
        """Replace the body with bytes, text or an lxml element/tree."""
        if isinstance(value, bytes):
            self.body = value
        elif isinstance(value, str):
            self.body = value.encode("utf-8")
        elif isinstance(value, etree._XSLTResultTree):
            self.body = bytes(value)
        elif isinstance(value, etree._ElementTree | etree._Element):
            self.body = etree.tostring(value, xml_declaration=False, encoding="utf-8")
        else:
            raise TypeError(f"cannot use {type(value).__name__} as a message body")

    def copy(self, body: bytes | None = None) -> Exchange:
        """A child exchange (split part, multicast copy) sharing the correlation id."""
        return Exchange(
            body=self.body if body is None else body,
            headers=dict(self.headers),
            attachments=list(self.attachments),
            correlation_id=self.correlation_id,
            route_id=self.route_id,
            message_id=self.message_id,
            properties=dict(self.properties),
        )
