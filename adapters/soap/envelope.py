"""SOAP envelopes in and out: version, WS-Addressing, mustUnderstand, Faults.

Hand-written on lxml rather than spyne (its MTOM is broken on Python 3) or
zeep (a client): the IHE endpoints need the raw envelope, the WS-Addressing
header block and exact Fault codes, and nothing else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from esb.errors import AdapterError
from esb.exchange import SAFE_XML_PARSER

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
ANONYMOUS = f"{WSA}/anonymous"
#: headers this engine understands; any other with mustUnderstand=true gets a Fault
UNDERSTOOD = frozenset(
    {f"{{{WSA}}}{n}" for n in ("Action", "MessageID", "To", "ReplyTo", "RelatesTo", "From", "FaultTo")}
)


class SoapFaultError(AdapterError):
    """A request the endpoint answers with a SOAP Fault (code, optional subcode, reason)."""

    def __init__(self, reason: str, *, code: str = "Sender", subcode: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.subcode = subcode


@dataclass
class Envelope:
    version: str
    header: list[Any]
    body: Any
    addressing: dict[str, str] = field(default_factory=dict)

    @property
    def payload(self) -> Any:
        """The first element of the Body (the operation's request)."""
        children = [c for c in self.body if isinstance(c.tag, str)]
        if not children:
            raise SoapFaultError("the SOAP Body is empty")
        return children[0]


def parse_envelope(data: bytes) -> Envelope:
    """Read a SOAP 1.1 or 1.2 envelope; protocol problems raise :class:`SoapFaultError`."""
    try:
        root = etree.fromstring(data, SAFE_XML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapFaultError(f"the message is not well-formed XML: {exc}") from None
    namespace = etree.QName(root).namespace
    if etree.QName(root).localname != "Envelope" or namespace not in (SOAP12, SOAP11):
        raise SoapFaultError("not a SOAP envelope", code="VersionMismatch")
    header = root.find(f"{{{namespace}}}Header")
    body = root.find(f"{{{namespace}}}Body")
    if body is None:
        raise SoapFaultError("the SOAP envelope has no Body")
    blocks = [h for h in (header if header is not None else []) if isinstance(h.tag, str)]
    for block in blocks:
        must = block.get(f"{{{namespace}}}mustUnderstand", "").lower() in ("1", "true")
        if must and block.tag not in UNDERSTOOD:
            raise SoapFaultError(f"header {block.tag} is not understood", code="MustUnderstand")
    addressing: dict[str, str] = {}
    for block in blocks:
        qname = etree.QName(block)
        if qname.namespace == WSA:
            address = block.find(f"{{{WSA}}}Address")
            text = address.text if address is not None else block.text
            addressing[qname.localname] = (text or "").strip()
    return Envelope("1.2" if namespace == SOAP12 else "1.1", blocks, body, addressing)


def _envelope(version: str, action: str, relates_to: str) -> tuple[Any, Any]:
    ns = SOAP12 if version == "1.2" else SOAP11
    root = etree.Element(f"{{{ns}}}Envelope", nsmap={"s": ns, "a": WSA})
    header = etree.SubElement(root, f"{{{ns}}}Header")
    if action:
        action_el = etree.SubElement(header, f"{{{WSA}}}Action")
        action_el.set(f"{{{ns}}}mustUnderstand", "1" if version == "1.1" else "true")
        action_el.text = action
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, f"{{{WSA}}}RelatesTo").text = relates_to
    return root, etree.SubElement(root, f"{{{ns}}}Body")


def response(payload: Any, *, version: str = "1.2", action: str = "", relates_to: str = "") -> bytes:
    """A response envelope around ``payload`` with WS-Addressing Action, MessageID, RelatesTo."""
    root, body = _envelope(version, action, relates_to)
    body.append(payload)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def fault(error: SoapFaultError, *, version: str = "1.2", relates_to: str = "") -> bytes:
    """A SOAP Fault for ``error`` (1.2: Code/Value, Subcode, Reason/Text; 1.1: faultcode, faultstring)."""
    action = f"{WSA}/fault"
    root, body = _envelope(version, action, relates_to)
    if version == "1.2":
        node = etree.SubElement(body, f"{{{SOAP12}}}Fault")
        code = etree.SubElement(node, f"{{{SOAP12}}}Code")
        etree.SubElement(code, f"{{{SOAP12}}}Value").text = f"s:{error.code}"
        if error.subcode:
            sub = etree.SubElement(code, f"{{{SOAP12}}}Subcode")
            etree.SubElement(sub, f"{{{SOAP12}}}Value").text = error.subcode
        reason = etree.SubElement(node, f"{{{SOAP12}}}Reason")
        text = etree.SubElement(reason, f"{{{SOAP12}}}Text")
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        text.text = error.reason
    else:
        node = etree.SubElement(body, f"{{{SOAP11}}}Fault")
        codes = {"Sender": "Client", "Receiver": "Server"}
        etree.SubElement(node, "faultcode").text = f"s:{codes.get(error.code, error.code)}"
        etree.SubElement(node, "faultstring").text = error.reason
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
