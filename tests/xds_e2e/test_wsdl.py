"""``?wsdl`` of the shipped XDS endpoints: loads in zeep (schemas through ``?xsd=``), addressed to the caller."""

from __future__ import annotations

import pytest
import requests
import zeep
from lxml import etree

from tests.xds_e2e.harness import RunningEngine

SOAP12_WSDL = "http://schemas.xmlsoap.org/wsdl/soap12/"
OPERATIONS = {
    "registry": {
        "DocumentRegistry_RegisterDocumentSet-b": "urn:ihe:iti:2007:RegisterDocumentSet-b",
        "DocumentRegistry_RegistryStoredQuery": "urn:ihe:iti:2007:RegistryStoredQuery",
    },
    "repository": {
        "DocumentRepository_ProvideAndRegisterDocumentSet-b": "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
        "DocumentRepository_RetrieveDocumentSet": "urn:ihe:iti:2007:RetrieveDocumentSet",
    },
}


@pytest.mark.parametrize("endpoint", ["registry", "repository"])
def test_wsdl_loads_in_zeep_and_names_this_endpoint(xds: RunningEngine, endpoint: str) -> None:
    url = xds.registry_url if endpoint == "registry" else xds.repository_url
    client = zeep.Client(f"{url}?wsdl")  # type: ignore[no-untyped-call]
    [service] = client.wsdl.services.values()
    [port] = service.ports.values()
    assert port.binding_options["address"] == url
    assert type(port.binding).__name__ == "Soap12Binding"
    operations = {name: op.soapaction for name, op in port.binding._operations.items()}
    assert operations == OPERATIONS[endpoint]
    assert {op.abstract.wsa_action for op in port.binding._operations.values()} == set(operations.values())


@pytest.mark.parametrize("endpoint", ["registry", "repository"])
def test_soap12_address_follows_the_url_the_caller_used(xds: RunningEngine, endpoint: str) -> None:
    url = xds.registry_url if endpoint == "registry" else xds.repository_url
    answer = requests.get(f"{url}?wsdl", headers={"Host": "xds.example.org:8443"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "text/xml; charset=utf-8"
    [address] = etree.fromstring(answer.content).iter(f"{{{SOAP12_WSDL}}}address")
    assert address.get("location") == f"http://xds.example.org:8443/xds/{endpoint}"
