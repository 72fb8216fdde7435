"""SOAP envelopes in and out: version, WS-Addressing, mustUnderstand, Faults.

Hand-written on lxml rather than spyne (its MTOM is broken on Python 3) or
zeep (a client): the IHE endpoints need the raw envelope, the WS-Addressing
header block and exact Fault codes, and nothing else.

Envelopes come from strangers, so parsing is defensive: no DTD at all (SOAP
forbids one, and it is where XXE and billion laughs live), libxml2's entity
amplification guard, a size limit and a nesting-depth limit, each a Fault.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from esb.errors import SoapFaultError

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
XOP = "http://www.w3.org/2004/08/xop/include"
ANONYMOUS = f"{WSA}/anonymous"
NONE_ADDRESS = f"{WSA}/none"
FAULT_ACTION = f"{WSA}/fault"
#: headers this engine understands; any other with mustUnderstand=true gets a Fault
UNDERSTOOD = frozenset(
    {f"{{{WSA}}}{n}" for n in ("Action", "MessageID", "To", "ReplyTo", "RelatesTo", "From", "FaultTo")}
)
#: prefixes a Fault subcode may use beyond s: and a: (WS-Security 1.1 fault codes are wsse: QNames)
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SUBCODE_NAMESPACES = {"wsse": WSSE}
#: roles this node plays (SOAP 1.2 role / SOAP 1.1 actor); blocks for other roles are not ours to check
OUR_ROLES = frozenset(
    {"", f"{SOAP12}/role/next", f"{SOAP12}/role/ultimateReceiver", "http://schemas.xmlsoap.org/soap/actor/next"}
)
#: defaults of the consumer's max_xml and of the depth check
MAX_XML = 20 * 1024 * 1024
MAX_DEPTH = 100

#: untrusted input: no DTD loading, no entity substitution, no network, libxml2's default limits kept
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


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

    @property
    def namespace(self) -> str:
        return SOAP12 if self.version == "1.2" else SOAP11

    def fault(self) -> SoapFaultError | None:
        """The Fault this envelope carries (a reply), or None."""
        children = [c for c in self.body if isinstance(c.tag, str)]
        if not children or children[0].tag != f"{{{self.namespace}}}Fault":
            return None
        return read_fault(children[0], self.version)


def _too_deep(root: Any, limit: int) -> bool:
    # One XPath in C rather than a Python walk: is there any element `limit + 1` levels down?
    return bool(root.xpath("boolean(" + "/*" * (limit + 1) + ")"))


def parse_envelope(
    data: bytes, *, max_size: int = MAX_XML, max_depth: int = MAX_DEPTH, understood: frozenset[str] = UNDERSTOOD
) -> Envelope:
    """Read a SOAP 1.1 or 1.2 envelope; protocol problems raise :class:`SoapFaultError`.

    ``understood``: the header blocks a mustUnderstand may name (an endpoint with
    WS-Security adds ``wsse:Security``, see :mod:`adapters.soap.wssecurity`).
    """
    if len(data) > max_size:
        raise SoapFaultError(f"the SOAP envelope is larger than the {max_size} bytes accepted here")
    try:
        root = etree.fromstring(data, PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapFaultError(f"the message is not well-formed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.doctype:
        raise SoapFaultError("a SOAP message must not contain a document type declaration (DTD)")
    if _too_deep(root.getroottree(), max_depth):
        raise SoapFaultError(f"the SOAP envelope nests elements deeper than {max_depth} levels")
    namespace = etree.QName(root).namespace
    if etree.QName(root).localname != "Envelope" or namespace not in (SOAP12, SOAP11):
        raise SoapFaultError("not a SOAP envelope", code="VersionMismatch")
    header = root.find(f"{{{namespace}}}Header")
    body = root.find(f"{{{namespace}}}Body")
    if body is None:
        raise SoapFaultError("the SOAP envelope has no Body")
    blocks = [h for h in (header if header is not None else []) if isinstance(h.tag, str)]
    role_attribute = f"{{{namespace}}}role" if namespace == SOAP12 else f"{{{namespace}}}actor"
    ours = [b for b in blocks if b.get(role_attribute, "") in OUR_ROLES]
    missed = tuple(
        b.tag
        for b in ours
        if b.get(f"{{{namespace}}}mustUnderstand", "").strip().lower() in ("1", "true") and b.tag not in understood
    )
    if missed:
        raise SoapFaultError(f"header {missed[0]} is not understood", code="MustUnderstand", not_understood=missed)
    addressing: dict[str, str] = {}
    for block in ours:
        qname = etree.QName(block)
        if qname.namespace == WSA:
            address = block.find(f"{{{WSA}}}Address")
            text = address.text if address is not None else block.text
            addressing[qname.localname] = (text or "").strip()
    return Envelope("1.2" if namespace == SOAP12 else "1.1", blocks, body, addressing)


def read_fault(node: Any, version: str) -> SoapFaultError:
    """A received Fault element as the error it stands for (SOAP 1.1 codes mapped to 1.2 names)."""
    if version == "1.2":
        value = node.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value") or "Receiver"
        subcode = node.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Subcode/{{{SOAP12}}}Value") or ""
        reason = node.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text") or ""
    else:
        value = node.findtext("faultcode") or "Server"
        subcode = ""
        reason = node.findtext("faultstring") or ""
    if version == "1.1" and value.strip().partition(":")[0] in SUBCODE_NAMESPACES:
        value, subcode = "Sender", value.strip()  # a WS-Security code in faultcode: the sender's fault
    code = value.rpartition(":")[2].split(".", 1)[0]
    code = {"Client": "Sender", "Server": "Receiver"}.get(code, code)
    return SoapFaultError(reason.strip(), code=code, subcode=subcode.strip())


def _envelope(
    version: str, action: str, relates_to: str, *, to: str = "", message_id: str = "", reply_to: str = ""
) -> tuple[Any, Any]:
    ns = SOAP12 if version == "1.2" else SOAP11
    root = etree.Element(f"{{{ns}}}Envelope", nsmap={"s": ns, "a": WSA})
    header = etree.SubElement(root, f"{{{ns}}}Header")
    must = "1" if version == "1.1" else "true"
    if action:
        action_el = etree.SubElement(header, f"{{{WSA}}}Action")
        action_el.set(f"{{{ns}}}mustUnderstand", must)
        action_el.text = action
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = message_id or f"urn:uuid:{uuid.uuid4()}"
    if reply_to:
        etree.SubElement(etree.SubElement(header, f"{{{WSA}}}ReplyTo"), f"{{{WSA}}}Address").text = reply_to
    if relates_to:
        etree.SubElement(header, f"{{{WSA}}}RelatesTo").text = relates_to
    if to:
        to_el = etree.SubElement(header, f"{{{WSA}}}To")
        to_el.set(f"{{{ns}}}mustUnderstand", must)
        to_el.text = to
    return root, etree.SubElement(root, f"{{{ns}}}Body")


def _serialize(root: Any) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def request(payload: Any, *, version: str = "1.2", action: str, to: str = "", message_id: str = "") -> bytes:
    """A request envelope with WS-Addressing Action, MessageID, ReplyTo (anonymous) and To."""
    root, body = _envelope(version, action, "", to=to, message_id=message_id, reply_to=ANONYMOUS)
    body.append(payload)
    return _serialize(root)


def response(payload: Any, *, version: str = "1.2", action: str = "", relates_to: str = "") -> bytes:
    """A response envelope around ``payload`` with WS-Addressing Action, MessageID, RelatesTo."""
    root, body = _envelope(version, action, relates_to)
    body.append(payload)
    return _serialize(root)


def fault(error: SoapFaultError, *, version: str = "1.2", relates_to: str = "") -> bytes:
    """A SOAP Fault for ``error`` (1.2: Code/Value, Subcode, Reason/Text; 1.1: faultcode, faultstring)."""
    root, body = _envelope(version, FAULT_ACTION, relates_to)
    if version == "1.2":
        header = root[0]
        for name in error.not_understood:
            qname = etree.QName(name)
            nsmap = {"nu": qname.namespace} if qname.namespace else None
            block = etree.SubElement(header, f"{{{SOAP12}}}NotUnderstood", nsmap=nsmap)
            block.set("qname", f"nu:{qname.localname}" if qname.namespace else qname.localname)
        node = etree.SubElement(body, f"{{{SOAP12}}}Fault", nsmap=_subcode_nsmap(error.subcode))
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
        node = etree.SubElement(body, f"{{{SOAP11}}}Fault", nsmap=_subcode_nsmap(error.subcode))
        codes = {"Sender": "Client", "Receiver": "Server"}
        # WS-Security on SOAP 1.1 puts its own code in faultcode (WSS 1.1 section 12)
        wss = _subcode_nsmap(error.subcode)
        etree.SubElement(node, "faultcode").text = error.subcode if wss else f"s:{codes.get(error.code, error.code)}"
        etree.SubElement(node, "faultstring").text = error.reason
    return _serialize(root)


def _subcode_nsmap(subcode: str) -> dict[str, str] | None:
    prefix = subcode.partition(":")[0] if ":" in subcode else ""
    return {prefix: SUBCODE_NAMESPACES[prefix]} if prefix in SUBCODE_NAMESPACES else None


def fault_status(error: SoapFaultError, version: str) -> int:
    """The HTTP status of a Fault: SOAP 1.2 HTTP binding 400 for Sender, else 500; SOAP 1.1 always 500."""
    return 400 if version == "1.2" and error.code == "Sender" else 500
