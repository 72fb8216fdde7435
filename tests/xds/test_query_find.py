"""ITI-18 FindDocuments and FindDocumentsByReferenceId against submissions registered through ITI-42."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from profiles.xds import ebxml
from tests.xds import samples
from tests.xds.test_query_support import (
    APPROVED,
    DEPRECATED,
    World,
    code,
    entries,
    find_documents,
    ids_of,
    listed,
    make_world,
    quote,
    slot_values,
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    yield from make_world(db_url)


def doc(pid: str, doc_id: str, **attributes: Any) -> object:
    return samples.document_entry(pid, id=doc_id, **attributes)


def register_documents(world: World, pid: str, *documents: dict[str, Any]) -> list[str]:
    """One submission with a DocumentEntry per attribute dict; their entryUUIDs in order."""
    names = [f"Doc{n}" for n in range(1, len(documents) + 1)]
    request = samples.submission(pid, doc_ids=names)
    objects = request[0]
    for name, attributes in zip(names, documents, strict=True):
        old = samples.find(request, name)
        objects.replace(old, samples.document_entry(pid, id=name, **attributes))
    found = world.register(request)
    return [found[name] for name in names]


def test_find_documents_leaf_class(world: World) -> None:
    pid = world.patient()
    other = world.patient()
    [mine] = register_documents(world, pid, {"title": "Mine"})
    register_documents(world, other, {})
    response = world.ok("FindDocuments", find_documents(pid))
    [element] = entries(response, "ExtrinsicObject")
    assert element.get("id") == mine
    assert element.get("status") == APPROVED
    assert element.get("lid") == mine
    assert element.get("objectType") == ebxml.STABLE_DOCUMENT
    assert slot_values(element, "creationTime") == ["20240102030405"]
    assert element.find("rim:Name/rim:LocalizedString", ebxml.NSMAP).get("value") == "Mine"
    assert len(ids_of(response)) == 1


def test_find_documents_object_ref_and_empty(world: World) -> None:
    pid = world.patient()
    entries_ = register_documents(world, pid, {}, {})
    response = world.ok("FindDocuments", find_documents(pid), "ObjectRef")
    assert sorted(ids_of(response)) == sorted(entries_)
    assert {node.tag for node in response.find(ebxml.q("rim", "RegistryObjectList"))} == {ebxml.q("rim", "ObjectRef")}
    # a patient with nothing registered, and an ID the EMPI does not know: Success, nothing
    assert ids_of(world.ok("FindDocuments", find_documents(world.patient()))) == []
    unknown = samples.patient_cx("nobody")
    assert ids_of(world.ok("FindDocuments", find_documents(unknown))) == []


def test_status_filter_and_deprecated_status_attribute(world: World) -> None:
    pid = world.patient()
    kept, old = register_documents(world, pid, {}, {})
    world.registry.deprecate(old, actor="test")
    assert ids_of(world.ok("FindDocuments", find_documents(pid), "ObjectRef")) == [kept]
    response = world.ok("FindDocuments", find_documents(pid, Status=listed(DEPRECATED)))
    [element] = entries(response, "ExtrinsicObject")
    assert (element.get("id"), element.get("status")) == (old, DEPRECATED)
    both = world.ok("FindDocuments", find_documents(pid, Status=listed(APPROVED, DEPRECATED)), "ObjectRef")
    assert sorted(ids_of(both)) == sorted([kept, old])
    submitted = world.ok("FindDocuments", find_documents(pid, Status=listed(ebxml.SUBMITTED)), "ObjectRef")
    assert ids_of(submitted) == []


def test_document_entry_type(world: World) -> None:
    pid = world.patient()
    [stable] = register_documents(world, pid, {})
    [on_demand] = register_documents(world, pid, {"on_demand": True})
    assert ids_of(world.ok("FindDocuments", find_documents(pid), "ObjectRef")) == [stable]
    only = world.ok("FindDocuments", find_documents(pid, Type=listed(ebxml.ON_DEMAND_DOCUMENT)), "ObjectRef")
    assert ids_of(only) == [on_demand]
    both = find_documents(pid, Type=listed(ebxml.STABLE_DOCUMENT, ebxml.ON_DEMAND_DOCUMENT))
    assert sorted(ids_of(world.ok("FindDocuments", both, "ObjectRef"))) == sorted([stable, on_demand])


def test_time_ranges_from_inclusive_to_exclusive(world: World) -> None:
    pid = world.patient()
    first, second = register_documents(
        world,
        pid,
        {"creation_time": "20240102030405", "service_start_time": "2023", "service_stop_time": "20230615"},
        {"creation_time": "20240201", "service_start_time": "20240201", "service_stop_time": None},
    )

    def found(**params: str) -> list[str]:
        return sorted(ids_of(world.ok("FindDocuments", find_documents(pid, **params), "ObjectRef")))

    assert found(CreationTimeFrom="20240102030405") == sorted([first, second])  # From is inclusive
    assert found(CreationTimeFrom="20240102030406") == [second]
    assert found(CreationTimeTo="20240201") == [first]  # To is exclusive
    assert found(CreationTimeTo="2024020100") == [first]
    assert found(CreationTimeTo="2024020101") == sorted([first, second])
    assert found(CreationTimeFrom="2024", CreationTimeTo="2025") == sorted([first, second])
    assert found(CreationTimeFrom="202402", CreationTimeTo="202403") == [second]
    assert found(CreationTimeFrom="2025") == []
    assert found(ServiceStartTimeFrom="2023", ServiceStartTimeTo="2024") == [first]
    # no serviceStopTime: a range on it cannot match
    assert found(ServiceStopTimeFrom="2000") == [first]
    assert found(ServiceStopTimeTo="20230616") == [first]
    assert found(ServiceStopTimeTo="20230615") == []


OTHER_CLASS = ("34133-9", "2.16.840.1.113883.6.1", "Summary")
CT, MR = samples.EVENT_CODE, ("MR", "1.2.840.10008.2.16.4", "Magnetic Resonance")
RESTRICTED = ("R", "2.16.840.1.113883.5.25", "Restricted")


def test_codes_or_within_a_slot_and_scheme_must_match(world: World) -> None:
    pid = world.patient()
    consult, summary = register_documents(world, pid, {}, {"class_code": OTHER_CLASS})

    def found(**params: Any) -> list[str]:
        response = world.ok("FindDocuments", find_documents(pid, **params), "ObjectRef")
        return sorted(ids_of(response))

    assert found(ClassCode=listed(code(samples.CLASS_CODE))) == [consult]
    assert found(ClassCode=listed(code(samples.CLASS_CODE), code(OTHER_CLASS))) == sorted([consult, summary])
    # several Values in the Slot are ORed as well
    assert found(ClassCode=[listed(code(samples.CLASS_CODE)), listed(code(OTHER_CLASS))]) == sorted([consult, summary])
    assert found(ClassCode=listed("11488-4^^2.16.840.1.113883.6.96")) == []  # same code, other scheme
    assert found(TypeCode=listed(code(samples.TYPE_CODE)), FormatCode=listed(code(samples.FORMAT_CODE))) == sorted(
        [consult, summary]
    )
    assert found(FormatCode=listed("urn:ihe:rad:TEXT^^1.3.6.1.4.1.19376.1.2.3")) == []
    assert found(
        PracticeSettingCode=listed(code(samples.PRACTICE_SETTING_CODE)), ClassCode=listed(code(OTHER_CLASS))
    ) == [summary]
    assert found(HealthcareFacilityTypeCode=listed(code(samples.HEALTHCARE_FACILITY_TYPE_CODE))) == sorted(
        [consult, summary]
    )


def test_event_and_confidentiality_codes_and_of_ors(world: World) -> None:
    pid = world.patient()
    both, ct_only = register_documents(
        world,
        pid,
        {"event_codes": (CT, MR), "confidentiality_codes": (samples.CONFIDENTIALITY_CODE, RESTRICTED)},
        {"event_codes": (CT,)},
    )

    def found(**params: Any) -> list[str]:
        response = world.ok("FindDocuments", find_documents(pid, **params), "ObjectRef")
        return sorted(ids_of(response))

    assert found(EventCodeList=listed(code(CT), code(MR))) == sorted([both, ct_only])  # CT OR MR
    assert found(EventCodeList=(listed(code(CT)), listed(code(MR)))) == [both]  # CT AND MR
    assert found(EventCodeList=(listed(code(CT), "XX^^1"), listed(code(MR)))) == [both]  # (CT OR XX) AND MR
    assert found(EventCodeList=(listed(code(MR)), listed("XX^^1"))) == []
    assert found(ConfidentialityCode=(listed(code(samples.CONFIDENTIALITY_CODE)), listed(code(RESTRICTED)))) == [both]
    assert found(ConfidentialityCode=listed(code(samples.CONFIDENTIALITY_CODE))) == sorted([both, ct_only])


def test_author_person_like(world: World) -> None:
    pid = world.patient()
    welby, smith = register_documents(
        world, pid, {"author_person": "^Welby^Marcus^^^Dr^MD"}, {"author_person": "^O'Smith^Anna^^^^"}
    )

    def found(*patterns: str) -> list[str]:
        response = world.ok("FindDocuments", find_documents(pid, AuthorPerson=listed(*patterns)), "ObjectRef")
        return sorted(ids_of(response))

    assert found("^Welby^Marcus^^^Dr^MD") == [welby]
    assert found("%Welby%") == [welby]
    assert found("^W_lby%") == [welby]
    assert found("^W_by%") == []
    assert found("%welby%") == []  # LIKE is case-sensitive, on every database
    assert found("%O'Smith%") == [smith]  # '' in the query value is the quote
    assert found("%Welby%", "%Smith%") == sorted([welby, smith])
    assert found("%") == sorted([welby, smith])
    assert found("*") == []  # only % and _ are wildcards
    assert found("^Welby^Marcus^^^Dr^M") == []


INJECTIONS = ["' OR 1=1 --", "x'); DROP TABLE esb_xds_objects; --", "%' OR '1'='1", "\\' OR 1=1 --"]


@pytest.mark.parametrize("hostile", INJECTIONS)
def test_hostile_values_are_just_values(world: World, hostile: str) -> None:
    pid = world.patient()
    register_documents(world, pid, {})
    for params in (
        find_documents(pid, AuthorPerson=listed(hostile)),
        find_documents(pid, ClassCode=listed(f"{hostile}^^{hostile}")),
        find_documents(pid, Status=listed(f"urn:oasis:names:tc:ebxml-regrep:StatusType:{hostile}")),
        find_documents(f"{hostile}^^^&{samples.MASTER_OID}&ISO"),
    ):
        assert ids_of(world.ok("FindDocuments", params)) == []
    # the registry is still there and whole
    assert len(ids_of(world.ok("FindDocuments", find_documents(pid)))) == 1


def test_find_documents_by_reference_id(world: World) -> None:
    pid = world.patient()
    accession = "A100^^^&1.2.3.4&ISO^urn:ihe:iti:xds:2013:accession"
    order = "O7^^^&1.2.3.5&ISO^urn:ihe:iti:xds:2013:order"
    both, accession_only, none = register_documents(
        world, pid, {"reference_ids": [accession, order]}, {"reference_ids": [accession]}, {}
    )
    del none

    def found(refs: Any, **more: Any) -> list[str]:
        params = find_documents(pid, ReferenceIdList=refs, **more)
        return sorted(ids_of(world.ok("FindDocumentsByReferenceId", params, "ObjectRef")))

    assert found(listed(accession)) == sorted([both, accession_only])
    assert found(listed(order)) == [both]
    assert found(listed(order, "nothing")) == [both]
    assert found((listed(accession), listed(order))) == [both]  # AND
    assert found(listed("A100")) == []  # the whole CXi, not a part of it
    assert found(listed(accession), ClassCode=listed(code(OTHER_CLASS))) == []
    codes = world.failed("FindDocumentsByReferenceId", find_documents(pid))
    assert codes == ["XDSStoredQueryMissingParam"]


def test_merged_patient_found_under_the_survivor(world: World) -> None:
    survivor, merged = world.patient(), world.patient()
    [own] = register_documents(world, survivor, {"source_patient_id": "S1^^^&1.2.3.1&ISO"})
    [moved] = register_documents(world, merged, {"source_patient_id": "M1^^^&1.2.3.1&ISO"})
    assert ids_of(world.ok("FindDocuments", find_documents(survivor), "ObjectRef")) == [own]
    world.merge(merged, survivor)
    response = world.ok("FindDocuments", find_documents(survivor))
    found = {element.get("id"): element for element in entries(response, "ExtrinsicObject")}
    assert set(found) == {own, moved}
    for element in found.values():
        patient_ids = [
            e.get("value")
            for e in element.iterchildren(ebxml.q("rim", "ExternalIdentifier"))
            if e.get("identificationScheme") == ebxml.DE_PATIENT_ID
        ]
        assert patient_ids == [survivor]
    assert slot_values(found[moved], "sourcePatientId") == ["M1^^^&1.2.3.1&ISO"]  # the source's, as sent
    # the merged ID no longer names a patient
    assert ids_of(world.ok("FindDocuments", find_documents(merged))) == []
    # merges chain: a third patient merged into the survivor of the first merge... and so on
    third = world.patient()
    [late] = register_documents(world, third, {})
    world.merge(third, merged)
    assert sorted(ids_of(world.ok("FindDocuments", find_documents(survivor), "ObjectRef"))) == sorted(
        [own, moved, late]
    )


def test_too_many_results(world: World) -> None:
    pid = world.patient()
    register_documents(world, pid, {}, {}, {})
    assert len(ids_of(world.ok("FindDocuments", find_documents(pid), "ObjectRef", max_results=3))) == 3
    codes = world.failed("FindDocuments", find_documents(pid), "LeafClass", max_results=2)
    assert codes == ["XDSTooManyResults"]


def test_patient_id_forms(world: World) -> None:
    pid = world.patient()
    register_documents(world, pid, {})
    spaced = find_documents(pid) | {"$XDSDocumentEntryPatientId": f"  {quote(pid)}\n"}
    assert len(ids_of(world.ok("FindDocuments", spaced))) == 1
    namespaced = pid.replace("^^^&", "^^^NS&")
    assert world.failed("FindDocuments", find_documents(namespaced)) == ["XDSRegistryError"]
