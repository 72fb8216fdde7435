"""Python steps for the SOAP test routes (``transform: {python: tests.adapters.soap.steps:NAME}``).

The engine runs in the test's process, so :data:`RECEIVED` shows a test the
exchanges a route saw, attachments and all.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from adapters.soap.envelope import XOP
from esb.errors import SoapFaultError
from esb.exchange import Attachment, Exchange, attachments_header

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDS = "urn:ihe:iti:xds-b:2007"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"

RECEIVED: list[Exchange] = []


def record(exchange: Exchange) -> None:
    RECEIVED.append(exchange.copy())


def _reply(exchange: Exchange, payload: etree._Element, attachments: list[Attachment]) -> Exchange:
    headers = {**exchange.headers, "content-type": "application/xml"}
    if any(a.path for a in attachments):
        headers["esb-attachments"] = attachments_header(attachments)
    return Exchange(body=etree.tostring(payload), headers=headers, attachments=attachments)


def query_response(exchange: Exchange) -> Exchange:
    """An empty successful AdhocQueryResponse (ITI-18)."""
    node = etree.Element(f"{{{QUERY}}}AdhocQueryResponse", nsmap={"query": QUERY, "rim": RIM})
    node.set("status", SUCCESS)
    etree.SubElement(node, f"{{{RIM}}}RegistryObjectList")
    return _reply(exchange, node, [])


def documents_back(exchange: Exchange) -> Exchange:
    """A RetrieveDocumentSetResponse with every request part sent back, plus an in-memory note (ITI-43 shape)."""
    node = etree.Element(f"{{{XDS}}}RetrieveDocumentSetResponse", nsmap={"xds": XDS, "rs": RS})
    etree.SubElement(node, f"{{{RS}}}RegistryResponse", status=SUCCESS)
    note = Attachment("note 1@esb.test", "text/plain", data=b"a note kept in memory")
    attachments = [*exchange.attachments, note]
    for index, attachment in enumerate(attachments):
        response = etree.SubElement(node, f"{{{XDS}}}DocumentResponse")
        etree.SubElement(response, f"{{{XDS}}}RepositoryUniqueId").text = "1.2.3"
        etree.SubElement(response, f"{{{XDS}}}DocumentUniqueId").text = f"1.2.3.{index}"
        etree.SubElement(response, f"{{{XDS}}}mimeType").text = attachment.content_type
        document = etree.SubElement(response, f"{{{XDS}}}Document")
        etree.SubElement(document, f"{{{XOP}}}Include", nsmap={"xop": XOP}, href=f"cid:{attachment.content_id}")
    return _reply(exchange, node, attachments)


def file_document(exchange: Exchange) -> Exchange:
    """Sends back the file named by the payload's ``path`` attribute as one file-backed part."""
    path = exchange.xml().get("path")
    attachment = Attachment("big@esb.test", "application/dicom", path=str(Path(path)))
    node = etree.Element(f"{{{XDS}}}Document", nsmap={"xds": XDS})
    etree.SubElement(node, f"{{{XOP}}}Include", nsmap={"xop": XOP}, href="cid:big@esb.test")
    return _reply(exchange, node, [attachment])


def summary(exchange: Exchange) -> Exchange:
    """A small reply naming the parts received (and dropping them), for the large-message tests."""
    node = etree.Element("{urn:test}received", nsmap={None: "urn:test"})
    for attachment in exchange.attachments:
        etree.SubElement(node, "{urn:test}part", cid=attachment.content_id, size=str(attachment.size))
    return _reply(exchange, node, [])


def sender_fault(exchange: Exchange) -> None:
    raise SoapFaultError("the request names repository 9.9.9, which is not this one", subcode="a:InvalidAddress")


def receiver_fault(exchange: Exchange) -> None:
    raise SoapFaultError("the registry behind this repository is down", code="Receiver")


def boom(exchange: Exchange) -> None:
    raise RuntimeError("patient Zhang San 110105199001011234 made it fail")


def registry_response(exchange: Exchange) -> Exchange:
    """A successful rs:RegistryResponse (ITI-41/42), after recording the request."""
    record(exchange)
    node = etree.Element(f"{{{RS}}}RegistryResponse", nsmap={"rs": RS}, status=SUCCESS)
    return _reply(exchange, node, [])
