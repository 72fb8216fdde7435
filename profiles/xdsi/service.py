"""``service:xdsi``: the XDS-I.b Imaging Document Source hosted on the bus.

Starting it hooks the KOS publisher to study completion in ``service:dicom-archive``
(each study ``complete-studies`` reports gets its manifest in the XDS repository,
replaced when the study changes), and it answers RAD-69:

- ``retrieve``: ``iherad:RetrieveImagingDocumentSetRequest`` ->
  ``xds:RetrieveDocumentSetResponse`` with each instance as an MTOM part, in a
  transfer syntax the consumer asked for.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from lxml import etree

from esb.components import Service
from esb.errors import SoapFaultError
from esb.exchange import SAFE_XML_PARSER, Exchange, attachments_header
from profiles.dicom import audit
from profiles.xdsi.rad69 import RESPONSE_ACTION, XDSI
from profiles.xdsi.wiring import ImagingSource, attach


class XdsiService(Service):
    operations: ClassVar[tuple[str, ...]] = ("retrieve",)

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.source: ImagingSource | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:  # attach once: a second hook would publish twice
            if self.source is None:
                self.source = await attach(self.context)

    async def call(self, operation: str, exchange: Exchange) -> Exchange | None:
        if self.source is None:
            raise RuntimeError("service:xdsi was not started")
        return await asyncio.to_thread(self._retrieve, exchange)

    def _retrieve(self, exchange: Exchange) -> Exchange:
        assert self.source is not None
        try:
            request = etree.fromstring(exchange.body, SAFE_XML_PARSER)
        except etree.XMLSyntaxError as exc:
            raise SoapFaultError(f"the request is not well-formed XML: {exc}") from None
        if request.tag != f"{{{XDSI}}}RetrieveImagingDocumentSetRequest":
            found = etree.QName(request).localname
            raise SoapFaultError(f"RAD-69 expects RetrieveImagingDocumentSetRequest, not {found}")
        payload, attachments = self.source.rad69.retrieve(request)
        audit.rad69(exchange.headers, self.source.rad69.archive, request, payload)
        headers = {"content-type": "application/xml", "soap-reply-action": RESPONSE_ACTION}
        reply = Exchange(body=etree.tostring(payload, encoding="utf-8"), headers=headers, attachments=attachments)
        if any(a.path is not None for a in attachments):
            reply.headers["esb-attachments"] = attachments_header(attachments)
        return reply
