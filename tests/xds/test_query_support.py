"""Helpers of the ITI-18 stored query tests: a registry filled through ITI-42, AdhocQueryRequest builders.

Every response a test gets through :meth:`World.query` has been validated
against the ebRS 3.0 query schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from lxml import etree

from esb.journal import database
from esb.schemas import xml_schema
from profiles.xds import ebxml
from profiles.xds.config import XdsConfig
from profiles.xds.registry.query import StoredQueries
from profiles.xds.registry.register import Registry
from profiles.xds.registry.schema import objects
from tests.xds import samples

APPROVED = ebxml.APPROVED
DEPRECATED = ebxml.DEPRECATED


def quote(text: str) -> str:
    """A string in the slot-value syntax."""
    return "'" + text.replace("'", "''") + "'"


def listed(*texts: str) -> str:
    """A list of strings in the slot-value syntax."""
    return "(" + ", ".join(quote(t) for t in texts) + ")"


def code(value: tuple[str, str, str]) -> str:
    """A code as a query value: ``code^^codingScheme``."""
    return f"{value[0]}^^{value[1]}"


def adhoc_query(name_or_id: str, params: Mapping[str, Any], return_type: str | None = "LeafClass") -> Any:
    """``query:AdhocQueryRequest`` for a stored query (by name, or a raw id).

    A parameter value is one Value (str), one Slot with several Values (list),
    or several Slots of the same name (tuple of those).
    """
    root = etree.Element(ebxml.q("query", "AdhocQueryRequest"), nsmap={"query": ebxml.QUERY, "rim": ebxml.RIM})
    option = etree.SubElement(root, ebxml.q("query", "ResponseOption"), returnComposedObjects="true")
    if return_type is not None:
        option.set("returnType", return_type)
    query = etree.SubElement(root, ebxml.q("rim", "AdhocQuery"))
    query.set("id", ebxml.STORED_QUERIES.get(name_or_id, name_or_id))
    for name, value in params.items():
        for slot_values in value if isinstance(value, tuple) else (value,):
            slot = etree.SubElement(query, ebxml.q("rim", "Slot"), name=name)
            value_list = etree.SubElement(slot, ebxml.q("rim", "ValueList"))
            for text in [slot_values] if isinstance(slot_values, str) else slot_values:
                etree.SubElement(value_list, ebxml.q("rim", "Value")).text = text
    return root


def status_of(response: Any) -> str:
    return str(response.get("status")).rsplit(":", 1)[-1]


def errors_of(response: Any) -> list[tuple[str, str]]:
    """(errorCode, severity) of each RegistryError."""
    return [
        (e.get("errorCode"), e.get("severity").rsplit(":", 1)[-1])
        for e in response.iter(ebxml.q("rs", "RegistryError"))
    ]


def codes_of(response: Any) -> list[str]:
    return [code for code, _ in errors_of(response)]


def objects_of(response: Any) -> list[Any]:
    object_list = response.find(ebxml.q("rim", "RegistryObjectList"))
    assert object_list is not None
    return list(object_list)


def ids_of(response: Any) -> list[str]:
    """Ids of the returned objects (ObjectRef or LeafClass), in order."""
    return [str(node.get("id")) for node in objects_of(response)]


def patient_of(element: Any) -> str:
    schemes = (ebxml.DE_PATIENT_ID, ebxml.SS_PATIENT_ID, ebxml.FOLDER_PATIENT_ID)
    for identifier in element.iterchildren(ebxml.q("rim", "ExternalIdentifier")):
        if identifier.get("identificationScheme") in schemes:
            return str(identifier.get("value"))
    raise KeyError("patientId")


def slot_values(element: Any, name: str) -> list[str]:
    for slot in element.iterchildren(ebxml.q("rim", "Slot")):
        if slot.get("name") == name:
            return [value.text or "" for value in slot.iter(ebxml.q("rim", "Value"))]
    return []


@dataclass
class World:
    """A migrated database, a Registry (ITI-42) and StoredQueries (ITI-18) on it."""

    engine: sa.Engine
    config: XdsConfig

    @property
    def registry(self) -> Registry:
        return Registry(self.engine, self.config, samples.MASTER_OID)

    def queries(self, **config: Any) -> StoredQueries:
        return StoredQueries(self.engine, replace(self.config, **config), samples.MASTER_OID)

    def patient(self, person_id: str | None = None) -> str:
        return samples.add_patient(self.engine, person_id)

    def register(self, request: Any) -> dict[str, str]:
        """Register (must succeed); symbolic id -> entryUUID, found back through the uniqueIds."""
        response = self.registry.register(request)
        assert status_of(response) == "Success", etree.tostring(response)
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for node in request.iter(ebxml.q("rim", "ExtrinsicObject"), ebxml.q("rim", "RegistryPackage")):
                unique_id = samples.unique_id_of(node)
                entry = conn.execute(sa.select(objects.c.id).where(objects.c.unique_id == unique_id)).scalar_one()
                found[str(node.get("id"))] = entry
        return found

    def query(self, name: str, params: Mapping[str, Any], return_type: str | None = "LeafClass", **config: Any) -> Any:
        """Run a stored query; the response is checked against the ebRS query schema."""
        response = self.queries(**config).run(adhoc_query(name, params, return_type))
        schema = xml_schema("ebrs-query")
        assert schema.validate(response), schema.error_log
        return response

    def ok(self, name: str, params: Mapping[str, Any], return_type: str = "LeafClass", **config: Any) -> Any:
        """A query that must succeed without any RegistryError."""
        response = self.query(name, params, return_type, **config)
        assert status_of(response) == "Success", errors_of(response)
        assert errors_of(response) == []
        return response

    def failed(self, name: str, params: Mapping[str, Any], return_type: str = "LeafClass", **config: Any) -> list[str]:
        """A query that must fail, with no object returned; its error codes."""
        response = self.query(name, params, return_type, **config)
        assert status_of(response) == "Failure"
        assert objects_of(response) == []
        return codes_of(response)

    def merge(self, merged: str, survivor: str) -> None:
        """The EMPI merges person ``merged`` into ``survivor`` (CX patient IDs)."""
        from profiles.empi.schema import persons

        with self.engine.begin() as conn:
            conn.execute(
                sa.update(persons)
                .where(persons.c.id == merged.split("^")[0])
                .values(status="merged", merged_into=survivor.split("^")[0])
            )


def make_world(db_url: str) -> Iterator[World]:
    engine = database.make_engine(db_url)
    database.upgrade(engine)
    yield World(engine, XdsConfig())
    engine.dispose()


def find_documents(pid: str, **more: Any) -> dict[str, Any]:
    """FindDocuments parameters: the patient, Approved, plus ``more`` (``$`` prefix and XDSDocumentEntry implied)."""
    params: dict[str, Any] = {
        "$XDSDocumentEntryPatientId": quote(pid),
        "$XDSDocumentEntryStatus": listed(APPROVED),
    }
    params.update({_name(key): value for key, value in more.items()})
    return params


def _name(key: str) -> str:
    return key if key.startswith("$") else f"$XDSDocumentEntry{key}"


def entries(response: Any, kind: str) -> Sequence[Any]:
    """LeafClass objects of one element type (``ExtrinsicObject``, ``RegistryPackage``, ``Association``)."""
    return [node for node in objects_of(response) if node.tag == ebxml.q("rim", kind)]
