"""ITI-18 parameters without a database: the slot-value syntax and the binding to each query's table."""

from __future__ import annotations

from typing import Any

import pytest

from esb.errors import XdsError
from profiles.xds import ebxml
from profiles.xds.registry.query.binding import Args, bind, slots_of
from profiles.xds.registry.query.parameters import BY_UUID, SPECS
from profiles.xds.registry.query.service import RUNNERS
from profiles.xds.registry.query.values import Literal, SyntaxProblem, parse_value
from tests.xds.test_query_support import APPROVED, adhoc_query, listed, quote

PID = "abc123^^^&1.2.156.112.9999.1.1&ISO"
FIND = BY_UUID[ebxml.STORED_QUERIES["FindDocuments"]]


def strings(*texts: str) -> tuple[Literal, ...]:
    return tuple(Literal(t, True) for t in texts)


# -- the slot-value syntax ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "items", "is_list"),
    [
        ("'urn:a'", strings("urn:a"), False),
        ("'Children''s Hospital'", strings("Children's Hospital"), False),
        ("''''", strings("'"), False),
        ("''", strings(""), False),
        ("200412252300", (Literal("200412252300", False),), False),
        ("  'a'  \n", strings("a"), False),
        ("('a')", strings("a"), True),
        ("('a','b')", strings("a", "b"), True),
        ("\n  ( 'a' ,\n 'b,c' , 'd)e' )  ", strings("a", "b,c", "d)e"), True),
        ("(1, 2)", (Literal("1", False), Literal("2", False)), True),
        ("(' OR 1=1 --')", strings(" OR 1=1 --"), True),
    ],
)
def test_values_parse(text: str, items: tuple[Literal, ...], is_list: bool) -> None:
    parsed = parse_value(text)
    assert parsed.items == items
    assert parsed.is_list is is_list


@pytest.mark.parametrize(
    "text",
    ["", "   ", "abc", "'abc", "'a''", "()", "('a' 'b')", "('a',)", "(", "('a'", "'a' x", "('a'))", "12ab", "(,'a')"],
)
def test_values_malformed(text: str) -> None:
    with pytest.raises(SyntaxProblem):
        parse_value(text)


# -- the query tables -----------------------------------------------------------------


def test_every_stored_query_has_a_table_and_an_implementation() -> None:
    assert set(BY_UUID) == set(ebxml.STORED_QUERIES.values())
    assert {spec.name for spec in SPECS} == set(RUNNERS) == set(ebxml.STORED_QUERIES)


def binding(name: str, params: dict[str, Any]) -> tuple[Args, list[XdsError]]:
    request = adhoc_query(name, params)
    spec = BY_UUID[ebxml.STORED_QUERIES[name]]
    return bind(spec, slots_of(request.find(ebxml.q("rim", "AdhocQuery"))))


def problems(name: str, params: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e.code, e.location, e.severity) for e in binding(name, params)[1]]


def find(**more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"$XDSDocumentEntryPatientId": quote(PID), "$XDSDocumentEntryStatus": listed(APPROVED)}
    params.update({f"$XDSDocumentEntry{k}": v for k, v in more.items()})
    return params


def test_binding_types_values() -> None:
    args, found = binding(
        "FindDocuments",
        find(
            CreationTimeFrom="2004",
            CreationTimeTo="200412252300",
            ClassCode="('a^^1.2', 'b^^1.3')",
            EventCodeList=(["('x^^1')", "('y^^1')"], "('z^^2')"),
            AuthorPerson=listed("%Smith%"),
            MetadataLevel="1",
        ),
    )
    assert [e.code for e in found] == ["XDSRegistryError"]  # $XDSDocumentEntryMetadataLevel is not a parameter
    assert found[0].severity == "Warning"
    assert args.one("$XDSDocumentEntryPatientId") == PID
    assert args.one("$XDSDocumentEntryCreationTimeFrom") == "20040000000000"
    assert args.one("$XDSDocumentEntryCreationTimeTo") == "20041225230000"
    assert args.many("$XDSDocumentEntryClassCode") == [("a", "1.2"), ("b", "1.3")]
    # several Values in one Slot: OR; several Slots: AND
    assert args.groups("$XDSDocumentEntryEventCodeList") == [[("x", "1"), ("y", "1")], [("z", "2")]]
    assert args.many("$XDSDocumentEntryAuthorPerson") == ["%Smith%"]
    assert args.many("$XDSDocumentEntryStatus") == [APPROVED]


MISSING, NUMBER, ERROR = "XDSStoredQueryMissingParam", "XDSStoredQueryParamNumber", "XDSRegistryError"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # required parameters
        ({"$XDSDocumentEntryStatus": listed(APPROVED)}, (MISSING, "$XDSDocumentEntryPatientId")),
        ({"$XDSDocumentEntryPatientId": quote(PID)}, (MISSING, "$XDSDocumentEntryStatus")),
        # a single-valued parameter with several values
        (find(PatientId=f"({quote(PID)}, {quote(PID)})"), (NUMBER, "$XDSDocumentEntryPatientId")),
        (find(PatientId=(quote(PID), quote(PID))), (NUMBER, "$XDSDocumentEntryPatientId")),
        (find(PatientId=[quote(PID), quote(PID)]), (NUMBER, "$XDSDocumentEntryPatientId")),
        (find(CreationTimeFrom=["2004", "2005"]), (NUMBER, "$XDSDocumentEntryCreationTimeFrom")),
        # syntax and types
        (find(PatientId=f"({quote(PID)})"), (ERROR, "$XDSDocumentEntryPatientId")),
        (find(PatientId=PID), (ERROR, "$XDSDocumentEntryPatientId")),
        (find(PatientId=quote("12345")), (ERROR, "$XDSDocumentEntryPatientId")),
        (find(Status=quote(APPROVED)), (ERROR, "$XDSDocumentEntryStatus")),
        (find(Status=listed("Approved")), (ERROR, "$XDSDocumentEntryStatus")),
        (find(CreationTimeFrom="'2004'"), (ERROR, "$XDSDocumentEntryCreationTimeFrom")),
        (find(CreationTimeFrom="20041"), (ERROR, "$XDSDocumentEntryCreationTimeFrom")),
        (find(CreationTimeFrom="-2004"), (ERROR, "$XDSDocumentEntryCreationTimeFrom")),
        (find(ClassCode=listed("a")), (ERROR, "$XDSDocumentEntryClassCode")),
        (find(ClassCode=listed("a^^^1.2")), (ERROR, "$XDSDocumentEntryClassCode")),
        (find(ClassCode=listed("^^1.2")), (ERROR, "$XDSDocumentEntryClassCode")),
        (find(ClassCode=listed("a^x^1.2")), (ERROR, "$XDSDocumentEntryClassCode")),
        (find(ClassCode="(a^^1.2)"), (ERROR, "$XDSDocumentEntryClassCode")),
        (find(ClassCode="('a^^1.2'"), (ERROR, "$XDSDocumentEntryClassCode")),
        (find(Type=listed("urn:uuid:not-a-type")), (ERROR, "$XDSDocumentEntryType")),
        (find(AuthorPerson=quote("Smith")), (ERROR, "$XDSDocumentEntryAuthorPerson")),
        # AND semantics (several Slots) only where the table allows them
        (find(ClassCode=(listed("a^^1"), listed("b^^1"))), (ERROR, "$XDSDocumentEntryClassCode")),
        (find(AuthorPerson=(listed("a"), listed("b"))), (ERROR, "$XDSDocumentEntryAuthorPerson")),
        (find(ClassCode=[]), (ERROR, "$XDSDocumentEntryClassCode")),
        (find() | {"$MetadataLevel": "'1'"}, (ERROR, "$MetadataLevel")),
        (find() | {"$MetadataLevel": "3"}, (ERROR, "$MetadataLevel")),
    ],
)
def test_binding_errors(params: dict[str, Any], expected: tuple[str, str]) -> None:
    found = [p for p in problems("FindDocuments", params) if p[2] == "Error"]
    assert [(code, location) for code, location, _ in found] == [expected]


def test_binding_reports_every_problem_and_never_echoes_the_patient_id() -> None:
    params = {"$XDSDocumentEntryPatientId": listed(PID, PID), "$XDSDocumentEntryCreationTimeTo": "'x'", "$Bogus": "1"}
    args, found = binding("FindDocuments", params)
    assert sorted((e.code, e.location, e.severity) for e in found) == [
        ("XDSRegistryError", "$Bogus", "Warning"),
        ("XDSRegistryError", "$XDSDocumentEntryCreationTimeTo", "Error"),
        ("XDSStoredQueryMissingParam", "$XDSDocumentEntryStatus", "Error"),
        ("XDSStoredQueryParamNumber", "$XDSDocumentEntryPatientId", "Error"),
    ]
    assert not any("abc123" in e.text for e in found)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("GetDocuments", {}, [(MISSING, "$XDSDocumentEntryEntryUUID")]),
        (
            "GetDocuments",
            {"$XDSDocumentEntryEntryUUID": listed("urn:uuid:1"), "$XDSDocumentEntryUniqueId": listed("1.2")},
            [(NUMBER, "$XDSDocumentEntryUniqueId")],
        ),
        ("GetDocuments", {"$XDSDocumentEntryUniqueId": quote("1.2")}, [(ERROR, "$XDSDocumentEntryUniqueId")]),
        ("GetFolders", {}, [(MISSING, "$XDSFolderEntryUUID")]),
        ("GetAssociations", {}, [(MISSING, "$uuid")]),
        ("GetSubmissionSets", {"$uuid": "'urn:uuid:1'"}, [(ERROR, "$uuid")]),
        (
            "GetSubmissionSetAndContents",
            {"$XDSSubmissionSetEntryUUID": listed("urn:uuid:1", "urn:uuid:2")},
            [(NUMBER, "$XDSSubmissionSetEntryUUID")],
        ),
        (
            "GetFolderAndContents",
            {"$XDSFolderUniqueId": quote("1"), "$XDSFolderEntryUUID": quote("u")},
            [(NUMBER, "$XDSFolderUniqueId")],
        ),
        (
            "GetFoldersForDocument",
            {"$homeCommunityId": quote("urn:oid:1.2")},
            [(MISSING, "$XDSDocumentEntryEntryUUID")],
        ),
        ("GetRelatedDocuments", {"$XDSDocumentEntryEntryUUID": quote("urn:uuid:1")}, [(MISSING, "$AssociationTypes")]),
        (
            "FindSubmissionSets",
            {
                "$XDSSubmissionSetPatientId": quote(PID),
                "$XDSSubmissionSetStatus": listed(APPROVED),
                "$XDSSubmissionSetAuthorPerson": listed("a", "b"),
            },
            [(NUMBER, "$XDSSubmissionSetAuthorPerson")],
        ),
        ("FindFolders", {"$XDSFolderPatientId": quote(PID)}, [(MISSING, "$XDSFolderStatus")]),
        (
            "GetAll",
            {"$patientId": quote(PID), "$XDSDocumentEntryStatus": listed(APPROVED)},
            [(MISSING, "$XDSSubmissionSetStatus"), (MISSING, "$XDSFolderStatus")],
        ),
        (
            "FindDocumentsByReferenceId",
            {"$XDSDocumentEntryPatientId": quote(PID), "$XDSDocumentEntryStatus": listed(APPROVED)},
            [(MISSING, "$XDSDocumentEntryReferenceIdList")],
        ),
    ],
)
def test_binding_errors_per_query(name: str, params: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    found = [(code, location) for code, location, severity in problems(name, params) if severity == "Error"]
    assert sorted(found) == sorted(expected)


def test_and_or_parameters() -> None:
    """AND/OR semantics where the tables allow them: eventCodeList, confidentialityCode, Folder codeList, refs."""
    allowed = {(spec.name, p.name) for spec in SPECS for p in spec.params if p.and_or}
    assert {name for _, name in allowed} == {
        "$XDSDocumentEntryEventCodeList",
        "$XDSDocumentEntryConfidentialityCode",
        "$XDSFolderCodeList",
        "$XDSDocumentEntryReferenceIdList",
    }
    args, found = binding(
        "FindFolders",
        {
            "$XDSFolderPatientId": quote(PID),
            "$XDSFolderStatus": listed(APPROVED),
            "$XDSFolderCodeList": (listed("a^^1", "b^^1"), listed("c^^1")),
        },
    )
    assert found == []
    assert args.groups("$XDSFolderCodeList") == [[("a", "1"), ("b", "1")], [("c", "1")]]
