"""ITI-18 FindSubmissionSets, FindFolders and GetAll over ITI-42 submissions with Folders."""

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
    ids_of,
    listed,
    make_world,
    patient_of,
    quote,
)


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    yield from make_world(db_url)


def find_sets(pid: str, **more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"$XDSSubmissionSetPatientId": quote(pid), "$XDSSubmissionSetStatus": listed(APPROVED)}
    params.update({f"$XDSSubmissionSet{k}": v for k, v in more.items()})
    return params


def find_folders(pid: str, **more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"$XDSFolderPatientId": quote(pid), "$XDSFolderStatus": listed(APPROVED)}
    params.update({f"$XDSFolder{k}": v for k, v in more.items()})
    return params


def get_all(pid: str, **more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "$patientId": quote(pid),
        "$XDSDocumentEntryStatus": listed(APPROVED, DEPRECATED),
        "$XDSSubmissionSetStatus": listed(APPROVED),
        "$XDSFolderStatus": listed(APPROVED),
    }
    params.update(more)
    return params


def test_find_submission_sets(world: World) -> None:
    pid = world.patient()
    first = world.register(samples.submission(pid, ss={"submission_time": "20240102030500"}))["SubmissionSet01"]
    second = world.register(
        samples.submission(
            pid,
            ss={
                "submission_time": "20240301",
                "source_id": "1.2.3.77",
                "author_person": "^Jones^Ann^^^^",
                "content_type_code": ("X-1", "1.2.3.88", "Other"),
            },
        )
    )["SubmissionSet01"]
    world.register(samples.submission(world.patient()))

    def found(**more: Any) -> list[str]:
        return sorted(ids_of(world.ok("FindSubmissionSets", find_sets(pid, **more), "ObjectRef")))

    assert found() == sorted([first, second])
    assert found(SourceId=listed("1.2.3.77")) == [second]
    assert found(SourceId=listed("1.2.3.77", samples.SOURCE_ID)) == sorted([first, second])
    assert found(SubmissionTimeFrom="20240102030500", SubmissionTimeTo="20240301") == [first]
    assert found(SubmissionTimeFrom="202403") == [second]
    assert found(AuthorPerson=quote("%Jones%")) == [second]
    assert found(AuthorPerson=quote("%Welby%")) == [first]
    assert found(ContentType=listed("X-1^^1.2.3.88")) == [second]
    assert found(ContentType=listed(code(samples.CONTENT_TYPE_CODE), "X-1^^1.2.3.88")) == sorted([first, second])
    assert found(Status=listed(DEPRECATED)) == []
    response = world.ok("FindSubmissionSets", find_sets(pid, SourceId=listed("1.2.3.77")))
    [package] = entries(response, "RegistryPackage")
    assert package.get("status") == APPROVED
    assert patient_of(package) == pid
    nodes = [c.get("classificationNode") for c in package.iterchildren(ebxml.q("rim", "Classification"))]
    assert ebxml.SUBMISSION_SET_NODE in nodes


def test_find_folders(world: World) -> None:
    pid = world.patient()
    imaging = world.register(samples.submission(pid, folder=True))["Folder01"]
    other = world.register(
        samples.submission(pid, folder=True, folder_args={"codes": [("F1", "1.2.9", "F1"), ("F2", "1.2.9", "F2")]})
    )["Folder01"]

    def found(**more: Any) -> list[str]:
        return sorted(ids_of(world.ok("FindFolders", find_folders(pid, **more), "ObjectRef")))

    assert found() == sorted([imaging, other])
    assert found(CodeList=listed(code(samples.FOLDER_CODE))) == [imaging]
    assert found(CodeList=listed("F1^^1.2.9", code(samples.FOLDER_CODE))) == sorted([imaging, other])
    assert found(CodeList=(listed("F1^^1.2.9"), listed("F2^^1.2.9"))) == [other]
    assert found(CodeList=(listed("F1^^1.2.9"), listed(code(samples.FOLDER_CODE)))) == []
    # lastUpdateTime is the registry's (registration time)
    assert found(LastUpdateTimeFrom="2000", LastUpdateTimeTo="3000") == sorted([imaging, other])
    assert found(LastUpdateTimeTo="2000") == []
    [folder] = entries(world.ok("FindFolders", find_folders(pid, CodeList=listed("F1^^1.2.9"))), "RegistryPackage")
    assert folder.get("id") == other
    nodes = [c.get("classificationNode") for c in folder.iterchildren(ebxml.q("rim", "Classification"))]
    assert ebxml.FOLDER_NODE in nodes
    assert ids_of(world.ok("FindFolders", find_folders(world.patient()))) == []


def test_get_all(world: World) -> None:
    pid = world.patient()
    first = world.register(samples.submission(pid, documents=2, folder=True))
    second = world.register(samples.submission(pid, document={"format_code": ("T", "1.2.7", "Text")}))
    world.register(samples.submission(world.patient(), folder=True))
    world.registry.deprecate(first["Document02"], actor="test")
    response = world.ok("GetAll", get_all(pid))
    found = set(ids_of(response))
    assert set(first.values()) | set(second.values()) <= found
    associations = entries(response, "Association")
    # 2 SS-doc + SS-folder + 2 folder-doc + 2 SS-(folder-doc) in the first; 1 SS-doc in the second
    assert len(associations) == 8
    assert len(found) == 2 + 3 + 1 + 8
    statuses = {e.get("id"): e.get("status") for e in entries(response, "ExtrinsicObject")}
    assert statuses[first["Document02"]] == DEPRECATED
    # per-kind status filters, and DocumentEntry-only filters
    approved = world.ok("GetAll", get_all(pid, **{"$XDSDocumentEntryStatus": listed(APPROVED)}), "ObjectRef")
    assert first["Document02"] not in ids_of(approved)
    no_packages = get_all(
        pid, **{"$XDSSubmissionSetStatus": listed(DEPRECATED), "$XDSFolderStatus": listed(DEPRECATED)}
    )
    response = world.ok("GetAll", no_packages)
    assert entries(response, "RegistryPackage") == []
    assert len(entries(response, "ExtrinsicObject")) == 3
    text_only = world.ok("GetAll", get_all(pid, **{"$XDSDocumentEntryFormatCode": listed("T^^1.2.7")}))
    assert [e.get("id") for e in entries(text_only, "ExtrinsicObject")] == [second["Document01"]]
    confidential = get_all(
        pid, **{"$XDSDocumentEntryConfidentialityCode": (listed(code(samples.CONFIDENTIALITY_CODE)),)}
    )
    assert len(entries(world.ok("GetAll", confidential), "ExtrinsicObject")) == 3
    on_demand = get_all(pid, **{"$XDSDocumentEntryType": listed(ebxml.ON_DEMAND_DOCUMENT)})
    assert entries(world.ok("GetAll", on_demand), "ExtrinsicObject") == []
    assert world.failed("GetAll", get_all(pid), "ObjectRef", max_results=10) == ["XDSTooManyResults"]
    assert ids_of(world.ok("GetAll", get_all(world.patient()))) == []


def test_get_all_after_a_merge(world: World) -> None:
    survivor, merged = world.patient(), world.patient()
    own = world.register(samples.submission(survivor))
    moved = world.register(samples.submission(merged, folder=True))
    world.merge(merged, survivor)
    response = world.ok("GetAll", get_all(survivor))
    assert set(own.values()) | set(moved.values()) <= set(ids_of(response))
    for element in [*entries(response, "ExtrinsicObject"), *entries(response, "RegistryPackage")]:
        assert patient_of(element) == survivor
    assert ids_of(world.ok("GetAll", get_all(merged))) == []
