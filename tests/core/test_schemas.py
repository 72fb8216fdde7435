"""The XDS.b and ebRS 3.0 schemas fetched at build time compile and validate."""

from __future__ import annotations

import pytest
from lxml import etree

from esb.errors import ConfigError
from esb.schemas import xml_schema

RETRIEVE = b"""<RetrieveDocumentSetRequest xmlns="urn:ihe:iti:xds-b:2007">
  <DocumentRequest>
    <RepositoryUniqueId>1.3.6.1.4.1.21367.2010.1.2.1125</RepositoryUniqueId>
    <DocumentUniqueId>1.42.20101110141555.15</DocumentUniqueId>
  </DocumentRequest>
</RetrieveDocumentSetRequest>"""

RESPONSE = b"""<rs:RegistryResponse xmlns:rs="urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
    status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure">
  <rs:RegistryErrorList>
    <rs:RegistryError errorCode="XDSUnknownPatientId" codeContext="unknown patient"
        severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"/>
  </rs:RegistryErrorList>
</rs:RegistryResponse>"""


def test_xds_b_schema_validates_an_iti43_request_and_refuses_a_broken_one() -> None:
    schema = xml_schema("xds.b")
    assert schema.validate(etree.fromstring(RETRIEVE))
    broken = RETRIEVE.replace(b"<RepositoryUniqueId>", b"<RepositoryId>").replace(
        b"</RepositoryUniqueId>", b"</RepositoryId>"
    )
    assert not schema.validate(etree.fromstring(broken))


def test_ebrs_registry_response_with_an_xds_error_code_validates() -> None:
    assert xml_schema("ebrs-rs").validate(etree.fromstring(RESPONSE))


def test_an_unknown_schema_names_where_it_was_looked_for() -> None:
    with pytest.raises(ConfigError, match="schema 'nope.xsd' is not at .*nope.xsd"):
        xml_schema("nope.xsd")
