"""Malformed, oversized and hostile requests get SOAP Faults and leave registry and repository unchanged.

Each hostile request carries a complete, valid submission (ITI-42 to the
registry; ITI-41 with its document as an MTOM part to the repository), so that
any of them getting through would show as a new registry object, repository row
or stored file. The routes are the shipped ones; only ``max_xml`` is lowered on
this module's copies so that "oversized" costs 200 KB rather than 20 MB.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep.exceptions
from lxml import etree

from adapters.soap.envelope import SOAP12, WSA
from esb.exchange import Attachment
from profiles.xds import ebxml
from tests.soap_client import Part, Reply, content_type, envelope, mtom, parse_reply
from tests.xds import samples
from tests.xds.repository_support import provide_request, retrieve_request
from tests.xds_e2e.harness import ROOT, RunningEngine, running_engine
from tests.xds_e2e.zeep_xds import XdsClient, failed, ok, pairs, unique_ids

MAX_XML = 128 * 1024
DOCUMENT = b"<ClinicalDocument>must never be stored</ClinicalDocument>"
CID = "doc1@e2e.test"


@pytest.fixture(scope="module")
def xds(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """The shipped routes, the two XDS ones copied with ``max_xml`` lowered."""
    directory = tmp_path_factory.mktemp("engine")
    routes = directory / "routes"
    routes.mkdir()
    for name in ("xds-registry", "xds-repository"):
        text = (ROOT / "routes" / f"{name}.yaml").read_text(encoding="utf-8")
        text, count = re.subn(r"^(  from: soap://\S+)$", rf"\1&max_xml={MAX_XML}", text, flags=re.MULTILINE)
        assert count == 1
        (routes / f"{name}.yaml").write_text(text, encoding="utf-8")
    served = [routes / "xds-registry.yaml", routes / "xds-repository.yaml", ROOT / "routes" / "hl7-in.yaml"]
    with running_engine(directory, module_db_url, served) as running:
        yield running


def registry_payload(pid: str) -> bytes:
    return bytes(etree.tostring(samples.submission(pid)))


def repository_payload(pid: str) -> bytes:
    submit = samples.submission(pid, document={"content": DOCUMENT})
    return bytes(etree.tostring(provide_request(submit, {"Document01": Attachment(CID, "text/xml", data=DOCUMENT)})))


def send(xds: RunningEngine, endpoint: str, data: bytes) -> Reply:
    """POST an envelope as it is: plain SOAP 1.2 to the registry, MTOM with the document to the repository."""
    if endpoint == "registry":
        answer = requests.post(xds.registry_url, data=data, headers={"Content-Type": content_type()}, timeout=10)
    else:
        value, body = mtom(data, [Part(CID, "text/xml", DOCUMENT)])
        answer = requests.post(xds.repository_url, data=body, headers={"Content-Type": value}, timeout=10)
    return parse_reply(answer.status_code, answer.headers, answer.content)


def action(endpoint: str) -> str:
    return ebxml.ACTION_ITI42 if endpoint == "registry" else ebxml.ACTION_ITI41


def with_dtd(dtd: str, data: bytes, reference: str, *, in_attribute: bool) -> bytes:
    """``data`` (an envelope without XML declaration) with an internal DTD and an entity ``reference``
    in place of the title (an attribute value) or of the languageCode (element text)."""
    target = (b'value="Report"', f'value="{reference}"') if in_attribute else (b">en-US<", f">{reference}<")
    hostile = data.replace(target[0], target[1].encode(), 1)
    assert hostile != data
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE s:Envelope [{dtd}]>'.encode() + hostile


LAUGHS = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{n} "{f"&a{n - 1};" * 10}">' for n in range(1, 10))


def laughs_in_text(data: bytes, secret: Path) -> bytes:
    return with_dtd(LAUGHS, data, "&a9;", in_attribute=False)


def laughs_in_attribute(data: bytes, secret: Path) -> bytes:
    return with_dtd(LAUGHS, data, "&a9;", in_attribute=True)


def xxe_in_text(data: bytes, secret: Path) -> bytes:
    return with_dtd(f'<!ENTITY x SYSTEM "file://{secret}">', data, "&x;", in_attribute=False)


def xxe_in_attribute(data: bytes, secret: Path) -> bytes:
    return with_dtd(f'<!ENTITY x SYSTEM "file://{secret}">', data, "&x;", in_attribute=True)


def malformed(data: bytes, secret: Path) -> bytes:
    return data[: len(data) - 40]  # cut off inside the Body


def oversized(data: bytes, secret: Path) -> bytes:
    comment = b"<!--" + b"x" * MAX_XML + b"-->"
    return data.replace(b"<s:Body>", b"<s:Body>" + comment, 1)


def too_deep(data: bytes, secret: Path) -> bytes:
    nested = b"<n xmlns='urn:n'>" * 120 + b"</n>" * 120
    return data.replace(b"<s:Body>", b"<s:Body>" + nested, 1)


CASES = {
    "malformed": (malformed, 400, "not well-formed"),
    # libxml2's amplification guard stops the laughs while parsing, wherever the reference is
    "billion-laughs": (laughs_in_text, 400, "Maximum entity amplification factor exceeded"),
    "billion-laughs-attribute": (laughs_in_attribute, 400, "Maximum entity amplification factor exceeded"),
    # an external entity is never loaded: in text the DTD itself is refused, in an attribute the parser stops
    "xxe": (xxe_in_text, 400, "must not contain a document type declaration (DTD)"),
    "xxe-attribute": (xxe_in_attribute, 400, "Attribute references external entity 'x'"),
    "oversized": (oversized, 413, f"larger than the {MAX_XML} bytes"),
    "too-deep": (too_deep, 400, "deeper than 100 levels"),
}


@pytest.mark.parametrize("endpoint", ["registry", "repository"])
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_xml_is_a_fault_and_changes_nothing(
    xds: RunningEngine, tmp_path: Path, endpoint: str, case: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:secret")
    build, http_status, reason = CASES[case]
    pid = xds.patient()
    payload = registry_payload(pid) if endpoint == "registry" else repository_payload(pid)
    data = build(envelope(payload, action=action(endpoint), declaration=False), secret)
    before = xds.counts()

    reply = send(xds, endpoint, data)
    assert reply.status == http_status, reply.body[:300]
    fault = reply.fault
    assert fault is not None and (fault.code, fault.subcode) == ("Sender", "")
    assert reason in fault.reason, fault.reason
    assert reply.action == f"{WSA}/fault"
    assert b"root:x" not in reply.body and b"lol" not in reply.body and b"Traceback" not in reply.body
    assert xds.counts() == before
    assert xds.spooled() == []


def test_the_same_requests_without_the_hostile_part_go_through(xds: RunningEngine) -> None:
    """The control: what the hostile variants wrap is a valid ITI-42 and a valid ITI-41."""
    for endpoint in ("registry", "repository"):
        pid = xds.patient()
        payload = registry_payload(pid) if endpoint == "registry" else repository_payload(pid)
        before = xds.counts()
        reply = send(xds, endpoint, envelope(payload, action=action(endpoint), message_id="urn:uuid:control-1"))
        assert reply.status == 200 and reply.payload.get("status") == ebxml.SUCCESS, reply.body[:600]
        assert (reply.action, reply.relates_to) == (ebxml.response_action(action(endpoint)), "urn:uuid:control-1")
        files = 1 if endpoint == "repository" else 0
        assert xds.counts().files == before.files + files and xds.counts().objects == before.objects + 3


def zeep_fault(call: Any) -> zeep.exceptions.Fault:
    with pytest.raises(zeep.exceptions.Fault) as caught:
        call()
    return caught.value


def test_plain_soap_for_iti41_and_iti43_is_a_fault(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    submit = samples.submission(pid, document={"content": DOCUMENT})
    before = xds.counts()
    fault = zeep_fault(lambda: client.provide(submit, {"Document01": DOCUMENT}, plain=True))
    assert (fault.code, fault.subcodes) == ("s:Sender", [])
    assert f"action '{ebxml.ACTION_ITI41}' must be sent MTOM/XOP-packaged" in str(fault.message)
    assert client.plain_transport.last_status == 400
    assert xds.counts() == before
    fault = zeep_fault(lambda: client.retrieve(*pairs(unique_ids(submit)[0]), plain=True))
    assert fault.code == "s:Sender" and "must be sent MTOM/XOP-packaged" in str(fault.message)
    assert client.plain_transport.last_status == 400


def test_wrong_payload_or_action_is_a_fault(xds: RunningEngine) -> None:
    before = xds.counts()
    query = b'<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/>'
    reply = send(xds, "registry", envelope(query, action=ebxml.ACTION_ITI42))
    assert reply.status == 400 and reply.fault is not None
    assert reply.fault.code == "Sender"
    assert reply.fault.reason == "register expects SubmitObjectsRequest, not AdhocQueryRequest"

    retrieve = etree.tostring(retrieve_request((samples.REPOSITORY_UNIQUE_ID, samples.new_oid())))
    reply = send(xds, "repository", envelope(retrieve, action=ebxml.ACTION_ITI41))
    assert reply.status == 400 and reply.fault is not None and reply.fault.code == "Sender"
    assert reply.fault.reason == "provide expects ProvideAndRegisterDocumentSetRequest, not RetrieveDocumentSetRequest"

    reply = send(xds, "registry", envelope(registry_payload(xds.patient()), action=ebxml.ACTION_ITI41))
    assert reply.status == 400 and reply.fault is not None
    assert (reply.fault.code, reply.fault.subcode) == ("Sender", "a:ActionNotSupported")
    assert reply.root.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault") is not None
    assert xds.counts() == before


def test_schema_invalid_submissions_are_registry_metadata_errors(xds: RunningEngine, client: XdsClient) -> None:
    pid = xds.patient()
    bogus = etree.Element(ebxml.q("rim", "Bogus"), nsmap={"rim": ebxml.RIM})
    before = xds.counts()
    for submit, call in (
        (samples.submission(pid, document={"content": DOCUMENT}), "provide"),
        (samples.submission(pid), "register"),
    ):
        submit.find(ebxml.q("rim", "RegistryObjectList")).append(bogus)
        answer = client.provide(submit, {"Document01": DOCUMENT}) if call == "provide" else client.register(submit)
        assert [code for code, _ in failed(answer)] == ["XDSRegistryMetadataError"], call
        assert "Bogus" in answer.RegistryErrorList.RegistryError[0].codeContext
    assert xds.counts() == before
    ok(client.provide(samples.submission(pid, document={"content": DOCUMENT}), {"Document01": DOCUMENT}))
