"""The unit of work that flows through a route.

An exchange carries the message body as bytes (what the wire gave us, what the
journal stores) plus a lazily parsed view, so an XPath filter on a large SOAP
body parses it once, and a route that never looks inside never parses at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

#: lxml parser for untrusted input: no DTDs, no entities, no network.
SAFE_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Attachment:
    """A binary part beside the body (MTOM part, DICOM file, ...)."""

    content_id: str
    content_type: str
    data: bytes


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
