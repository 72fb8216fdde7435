"""The patient-centred queries: FindDocuments, FindDocumentsByReferenceId, FindSubmissionSets, FindFolders, GetAll.

The queried patient ID is expanded to the IDs the EMPI merged into it
(``patient_group``), so a merge shows at once; an ID that was itself merged
into another no longer names a patient and matches nothing (its entries are
the survivor's now). Each Find is one SELECT on the (patient_id, kind, status)
index with EXISTS sub-selects for codes, authors and reference ids.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, union_all

from esb.errors import XdsError
from profiles.xds.registry.patients import PatientId, patient_group, patient_status
from profiles.xds.registry.query.base import Context, Outcome
from profiles.xds.registry.query.filters import (
    AUTHOR_PERSON,
    code_clauses,
    document_clauses,
    time_clauses,
    type_clauses,
    values_like,
)
from profiles.xds.registry.query.parameters import (
    DE_CONFIDENTIALITY_CODE,
    DE_FORMAT_CODE,
    DE_PATIENT_ID,
    DE_STATUS,
    FOLDER_PATIENT_ID,
    FOLDER_STATUS,
    PATIENT_ID,
    SS_AUTHOR_PERSON,
    SS_PATIENT_ID,
    SS_SOURCE_ID,
    SS_STATUS,
)
from profiles.xds.registry.schema import ASSOCIATION, DOCUMENT, FOLDER, SUBMISSION_SET, objects

_ORDER = (objects.c.registered_at, objects.c.id)


def _patients(ctx: Context, name: str) -> tuple[str, list[str]]:
    """The queried patient ID (as bound) and the IDs its query covers (none for a merged ID)."""
    cx = str(ctx.args.one(name))
    patient = PatientId.parse(cx)
    if patient is None:  # the binder let only well-formed IDs through
        raise XdsError(f"parameter {name} must be a patient ID of the form id^^^&OID&ISO", location=name)
    if patient_status(ctx.conn, patient, ctx.master_oid) == "merged":
        return cx, []
    return cx, patient_group(ctx.conn, patient, ctx.master_oid)


def find_documents(ctx: Context) -> Outcome:
    """FindDocuments and FindDocumentsByReferenceId (3.18.4.1.2.3.7.1 and .14): DocumentEntries."""
    cx, group = _patients(ctx, DE_PATIENT_ID)
    if not group:
        return Outcome(patient=cx)
    statement = (
        ctx.select()
        .where(objects.c.patient_id.in_(group), objects.c.kind == DOCUMENT, *document_clauses(ctx.args, ctx.dialect))
        .order_by(*_ORDER)
    )
    return Outcome(ctx.fetch(statement), cx)


def find_submission_sets(ctx: Context) -> Outcome:
    """FindSubmissionSets (3.18.4.1.2.3.7.2): SubmissionSets."""
    cx, group = _patients(ctx, SS_PATIENT_ID)
    if not group:
        return Outcome(patient=cx)
    args = ctx.args
    clauses = [objects.c.status.in_(args.many(SS_STATUS)), *time_clauses(args), *code_clauses(args)]
    if SS_SOURCE_ID in args:
        clauses.append(objects.c.source_id.in_(args.many(SS_SOURCE_ID)))
    if SS_AUTHOR_PERSON in args:
        clauses.append(values_like(AUTHOR_PERSON, [str(args.one(SS_AUTHOR_PERSON))], ctx.dialect))
    statement = (
        ctx.select()
        .where(objects.c.patient_id.in_(group), objects.c.kind == SUBMISSION_SET, *clauses)
        .order_by(*_ORDER)
    )
    return Outcome(ctx.fetch(statement), cx)


def find_folders(ctx: Context) -> Outcome:
    """FindFolders (3.18.4.1.2.3.7.3): Folders."""
    cx, group = _patients(ctx, FOLDER_PATIENT_ID)
    if not group:
        return Outcome(patient=cx)
    args = ctx.args
    clauses = [objects.c.status.in_(args.many(FOLDER_STATUS)), *time_clauses(args), *code_clauses(args)]
    statement = (
        ctx.select().where(objects.c.patient_id.in_(group), objects.c.kind == FOLDER, *clauses).order_by(*_ORDER)
    )
    return Outcome(ctx.fetch(statement), cx)


def get_all(ctx: Context) -> Outcome:
    """GetAll (3.18.4.1.2.3.7.4): the patient's SubmissionSets, DocumentEntries, Folders and their Associations.

    Status filters apply per kind; format, confidentiality and type filters to
    DocumentEntries only. Associations: those with a returned object at
    either end (as the NIST reference registry answers).
    """
    cx, group = _patients(ctx, PATIENT_ID)
    if not group:
        return Outcome(patient=cx)
    args = ctx.args
    of_patient = objects.c.patient_id.in_(group)
    selections = [
        [of_patient, objects.c.kind == SUBMISSION_SET, objects.c.status.in_(args.many(SS_STATUS))],
        [
            of_patient,
            objects.c.kind == DOCUMENT,
            objects.c.status.in_(args.many(DE_STATUS)),
            *type_clauses(args),
            *code_clauses(args, (DE_FORMAT_CODE, DE_CONFIDENTIALITY_CODE)),
        ],
        [of_patient, objects.c.kind == FOLDER, objects.c.status.in_(args.many(FOLDER_STATUS))],
    ]
    rows: list[Any] = []
    for clauses in selections:
        statement = ctx.select().where(*clauses).order_by(*_ORDER)
        rows.extend(ctx.fetch(statement, already=len(rows)))
    found = union_all(*(select(objects.c.id).where(*clauses) for clauses in selections))
    linked = or_(objects.c.source_object.in_(found), objects.c.target_object.in_(found))
    statement = ctx.select().where(objects.c.kind == ASSOCIATION, linked).order_by(*_ORDER)
    rows.extend(ctx.fetch(statement, already=len(rows)))
    return Outcome(rows, cx)
