"""WSDLs: the files load in zeep, ?wsdl serves them addressed to the caller, zeep calls our endpoints; lint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import zeep
from lxml import etree

from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.settings import Settings
from tests.adapters.soap import steps
from tests.adapters.soap.conftest import SoapEngine
from tests.conftest import write_routes
from tests.soap_client import zeep_client

ROOT = Path(__file__).resolve().parents[3]
SOAP12_WSDL = "http://schemas.xmlsoap.org/wsdl/soap12/"
XSD = "http://www.w3.org/2001/XMLSchema"
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"


def operations(client: zeep.Client) -> dict[str, tuple[str, str]]:
    port = next(iter(next(iter(client.wsdl.services.values())).ports.values()))
    return {name: (op.soapaction, op.abstract.wsa_action) for name, op in port.binding._operations.items()}


def test_wsdl_files_load_in_zeep() -> None:
    registry = zeep.Client(str(ROOT / "wsdl" / "xds-registry.wsdl"))
    assert operations(registry) == {
        "DocumentRegistry_RegistryStoredQuery": ("urn:ihe:iti:2007:RegistryStoredQuery",) * 2,
        "DocumentRegistry_RegisterDocumentSet-b": ("urn:ihe:iti:2007:RegisterDocumentSet-b",) * 2,
    }
    repository = zeep.Client(str(ROOT / "wsdl" / "xds-repository.wsdl"))
    assert operations(repository) == {
        "DocumentRepository_ProvideAndRegisterDocumentSet-b": ("urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",) * 2,
        "DocumentRepository_RetrieveDocumentSet": ("urn:ihe:iti:2007:RetrieveDocumentSet",) * 2,
    }
    binding = next(iter(repository.wsdl.bindings.values()))
    outputs = [op.output.body.qname.localname for op in binding._operations.values()]
    assert sorted(outputs) == ["RegistryResponse", "RetrieveDocumentSetResponse"]


async def test_served_wsdl_is_addressed_to_the_caller_and_zeep_calls_it(
    soap_engine: SoapEngine, client: aiohttp.ClientSession
) -> None:
    step = "transform: {python: tests.adapters.soap.steps:query_response}"
    engine = await soap_engine({"r": ("soap://127.0.0.1:0/xds/registry?wsdl=xds-registry.wsdl", steps_record(), step)})
    url = f"http://127.0.0.1:{engine.http_port}/xds/registry"
    async with client.get(f"{url}?wsdl") as answer:
        assert answer.status == 200 and answer.headers["Content-Type"] == "text/xml; charset=utf-8"
        served = etree.fromstring(await answer.read())
    assert served.find(f".//{{{SOAP12_WSDL}}}address").get("location") == url
    locations = [i.get("schemaLocation") for i in served.iter(f"{{{XSD}}}import")]
    assert locations == [f"{url}?xsd=xsd/vendor/ext/ebRS/{name}.xsd" for name in ("query", "lcm", "rs")]
    async with client.get(f"{url}?xsd=xsd/vendor/ext/ebRS/rim.xsd") as answer:
        rim = etree.fromstring(await answer.read())
    assert [i.get("schemaLocation") for i in rim.iter(f"{{{XSD}}}import")] == [f"{url}?xsd=xsd/vendor/ext/xml.xsd"]
    for hostile in ("../../etc/passwd", "setup.cfg", "xsd/../setup.cfg", "/etc/hosts", "wsdl/README.md"):
        async with client.get(url, params={"xsd": hostile}) as answer:
            assert answer.status == 404, hostile

    zeep_registry = await asyncio.to_thread(zeep_client, f"{url}?wsdl", mtom=False)
    service = zeep_registry.service
    result = await asyncio.to_thread(
        service["DocumentRegistry_RegistryStoredQuery"],
        ResponseOption={"returnType": "LeafClass", "returnComposedObjects": True},
        AdhocQuery={"id": FIND_DOCUMENTS},
    )
    assert result.status == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    seen = steps.RECEIVED[0].headers
    assert seen["soap-action"] == "urn:ihe:iti:2007:RegistryStoredQuery" and seen["soap-to"] == url


def steps_record() -> str:
    return "transform: {python: tests.adapters.soap.steps:record}"


async def test_zeep_sends_and_receives_mtom_through_the_repository_wsdl(soap_engine: SoapEngine) -> None:
    actions = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b,urn:ihe:iti:2007:RetrieveDocumentSet"
    source = f"soap://127.0.0.1:0/xds/repository?wsdl=xds-repository.wsdl&actions={actions}&mtom_actions={actions}"
    engine = await soap_engine(
        {
            "r": (
                source,
                "choice:\n"
                "        - when: {header: soap-action, equals: urn:ihe:iti:2007:RetrieveDocumentSet}\n"
                "          steps:\n"
                "            - transform: {python: tests.adapters.soap.steps:documents_back}\n"
                "        - otherwise:\n"
                "            - transform: {python: tests.adapters.soap.steps:registry_response}",
            )
        }
    )
    url = f"http://127.0.0.1:{engine.http_port}/xds/repository"
    repository = await asyncio.to_thread(zeep_client, f"{url}?wsdl")
    submit = {"RegistryObjectList": {"Identifiable": []}}
    result = await asyncio.to_thread(
        repository.service["DocumentRepository_ProvideAndRegisterDocumentSet-b"],
        SubmitObjectsRequest=submit,
        Document=[{"_value_1": b"<ClinicalDocument/>", "id": "Document01"}],
    )
    assert result.status.endswith(":Success")
    seen = steps.RECEIVED[0]
    assert seen.headers["soap-mtom"] == "true"
    (attachment,) = seen.attachments
    assert (
        attachment.read() == b"<ClinicalDocument/>" and attachment.content_id == repository.transport.sent[0].content_id
    )
    retrieved = await asyncio.to_thread(
        repository.service["DocumentRepository_RetrieveDocumentSet"],
        DocumentRequest=[{"RepositoryUniqueId": "1.2.3", "DocumentUniqueId": "1.2.3.4"}],
    )
    # documents_back answers the (empty) request parts plus its in-memory note, decoded by zeep from MTOM
    assert [d.Document for d in retrieved.DocumentResponse] == [b"a note kept in memory"]
    assert retrieved.RegistryResponse.status.endswith(":Success")


# -- lint -------------------------------------------------------------------------------


def lint_messages(tmp_path: Path, settings: Settings, routes: dict[str, tuple[str, str]]) -> list[str]:
    texts = {
        rid: f"route:\n  id: {rid}\n  from: {source}\n  steps:\n    - {step}\n"
        for rid, (source, step) in routes.items()
    }
    write_routes(tmp_path / "routes", texts)
    return sorted(str(e).split(": ", 1)[1] for e in lint([tmp_path / "routes"], EngineContext(settings)).errors)


def test_lint_checks_soap_endpoints(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    log = "log: {message: x}"
    routes = {
        "a": ("soap://127.0.0.1:9200/ws?wsdl=nope.wsdl&action=urn:a", log),
        "b": ("soap://127.0.0.1:9200/ws2?wsdl=../setup.cfg&actions=urn:a&mtom_actions=urn:b", log),
        "c": ("soap://127.0.0.1:9201/ws?certfile=/nowhere.pem", "to: soap://peer:0/x?wsdl=xds-registry.wsdl"),
        "d": ("soap://127.0.0.1:0/metrics?tls=true", log),
        "e": ("http://127.0.0.1:9200/ws", log),
        "f": ("soap:///ws", "to: soap://127.0.0.1:8080/x?version=1.3"),
        "g": ("soap://127.0.0.1:9202/ok?wsdl=xds-registry.wsdl", "to: soap://127.0.0.1:8080/x?tls=true&keyfile=k.pem"),
    }
    problems = "\n".join(lint_messages(tmp_path, settings, routes))
    expected = [
        "soap: option 'wsdl': no file 'nope.wsdl' in wsdl/ (there: xds-registry.wsdl, xds-repository.wsdl)",
        "soap: option 'action' applies to 'to' endpoints only",
        "soap: option 'wsdl' names a file in wsdl/, not a path (got '../setup.cfg')",
        "soap: mtom_actions names 'urn:b', which is not in actions",
        "soap: option 'certfile' needs tls=true",
        "soap: option 'certfile': no such file '/nowhere.pem'",
        "soap: option 'wsdl' applies to 'from' endpoints only",
        "soap: port 0 can only be listened on; name the peer's port in 'to'",
        "soap: path '/metrics' is served by the engine itself on port 0",
        "soap: tls=true needs option 'certfile' (the server certificate, PEM)",
        "soap: port 0 is the engine's plain HTTP port; give tls=true a port of its own",
        "'http://127.0.0.1:9200/ws' listens where route 'a' already does",
        "soap: needs a host, e.g. soap://0.0.0.0:8080/xds/registry",
        "option 'version' must be one of 1.2|1.1 (got '1.3')",
        "soap: option 'keyfile' needs 'certfile' too",
        "soap: option 'keyfile': no such file 'k.pem'",
    ]
    for text in expected:
        assert text in problems, text
    assert len(problems.splitlines()) == len(expected), problems


@pytest.mark.parametrize("name", ["xds-registry.wsdl", "xds-repository.wsdl"])
def test_wsdl_files_are_what_the_routes_name(name: str) -> None:
    shipped = (ROOT / "routes").glob("xds-*.yaml")
    assert any(f"wsdl={name}" in p.read_text() for p in shipped)
