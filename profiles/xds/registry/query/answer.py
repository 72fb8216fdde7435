"""The AdhocQueryResponse: ObjectRefs or the stored ebRIM elements, as the registry sees them now.

A LeafClass object is the element the registry stored at registration (ids
resolved, node Classifications inside their RegistryPackage), with what the
registry owns set to its current value: ``status`` (a Deprecated document
says so), ``lid``, and the patientId ExternalIdentifier, which names the
surviving patient when the EMPI merged the one it was registered under
(sourcePatientId is the source's and stays).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lxml import etree
from sqlalchemy import Connection, select

from esb.errors import XdsError
from esb.exchange import SAFE_XML_PARSER
from profiles.empi.schema import persons
from profiles.xds import ebxml
from profiles.xds.registry.patients import PatientId
from profiles.xds.registry.schema import ASSOCIATION

NOT_SINGLE_PATIENT = "XDSResultNotSinglePatient"

PATIENT_SCHEMES = (ebxml.DE_PATIENT_ID, ebxml.SS_PATIENT_ID, ebxml.FOLDER_PATIENT_ID)


def survivors(conn: Connection, patient_ids: Iterable[str], master_oid: str) -> dict[str, str]:
    """Each merged patient ID -> the ID it was merged into, followed to the end (IDs not merged are absent)."""
    parsed = {cx: PatientId.parse(cx) for cx in set(patient_ids)}
    of_person = {p.value: cx for cx, p in parsed.items() if p is not None and p.universal_id == master_oid}
    target: dict[str, str] = {}  # person id -> the person it was merged into
    frontier = set(of_person)
    while frontier:
        query = select(persons.c.id, persons.c.merged_into).where(
            persons.c.id.in_(sorted(frontier)), persons.c.status == "merged", persons.c.merged_into.isnot(None)
        )
        rows = conn.execute(query).all()
        target.update({row.id: row.merged_into for row in rows})
        frontier = {row.merged_into for row in rows} - set(target)
    result: dict[str, str] = {}
    for person, cx in of_person.items():
        end, seen = person, {person}
        while end in target and target[end] not in seen:
            end = target[end]
            seen.add(end)
        if end != person:
            result[cx] = str(PatientId(end, master_oid))
    return result


def check_single_patient(rows: Sequence[Any], merged: Mapping[str, str]) -> None:
    """XDSResultNotSinglePatient when the objects belong to more than one (surviving) patient."""
    patients = {merged.get(row.patient_id, row.patient_id) for row in rows if row.kind != ASSOCIATION}
    patients.discard(None)
    if len(patients) > 1:
        raise XdsError(
            f"the answer would hold objects of {len(patients)} patients; ask for one patient's objects",
            code=NOT_SINGLE_PATIENT,
        )


def leaf_element(row: Any, patient: str | None) -> Any:
    """The stored element with the registry's current status, lid and (when merged) patient ID."""
    element = etree.fromstring(row.xml, SAFE_XML_PARSER)
    element.set("status", row.status)
    if not element.get("lid"):
        element.set("lid", row.lid)
    if patient is not None and row.kind != ASSOCIATION:
        for identifier in element.iterchildren(ebxml.q("rim", "ExternalIdentifier")):
            if identifier.get("identificationScheme") in PATIENT_SCHEMES:
                identifier.set("value", patient)
    return element


def response(rows: Sequence[Any], *, leaf: bool, patient_of: Mapping[str, str], errors: Iterable[XdsError]) -> Any:
    """``query:AdhocQueryResponse``: status, RegistryErrorList (if any), RegistryObjectList."""
    problems = [e for error in errors for e in error.all()]
    node = etree.Element(ebxml.q("query", "AdhocQueryResponse"), nsmap={"query": ebxml.QUERY, "rim": ebxml.RIM})
    failed = any(e.severity == "Error" for e in problems)
    node.set("status", ebxml.response_status(problems))
    if problems:
        node.append(ebxml.registry_error_list(problems))
    object_list = etree.SubElement(node, ebxml.q("rim", "RegistryObjectList"))
    if failed:
        return node
    for row in rows:
        if leaf:
            object_list.append(leaf_element(row, patient_of.get(row.patient_id)))
        else:
            etree.SubElement(object_list, ebxml.q("rim", "ObjectRef")).set("id", row.id)
    return node
