"""The object-centred queries: GetDocuments ... GetRelatedDocuments (3.18.4.1.2.3.7.5 to .13).

They take entryUUIDs or uniqueIds, return objects in any availability status,
and follow Associations through the (source, type) and (target, type)
indexes. Each query is a handful of set-based SELECTs whatever the number of
objects (no SELECT per object); the result is checked against the limit
before the XML of a LeafClass answer is read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_, select

from profiles.xds import ebxml
from profiles.xds.registry.query.base import Context, Outcome, ids, prune_associations, unique_rows
from profiles.xds.registry.query.filters import code_clauses, type_clauses
from profiles.xds.registry.query.parameters import (
    ASSOCIATION_TYPES,
    DE_CONFIDENTIALITY_CODE,
    DE_ENTRY_UUID,
    DE_FORMAT_CODE,
    DE_UNIQUE_ID,
    FOLDER_ENTRY_UUID,
    FOLDER_UNIQUE_ID,
    SS_ENTRY_UUID,
    SS_UNIQUE_ID,
    UUID,
)
from profiles.xds.registry.schema import ASSOCIATION, DOCUMENT, FOLDER, SUBMISSION_SET, objects

Clause = ColumnElement[bool]

_ORDER = (objects.c.registered_at, objects.c.id)


def _identified(ctx: Context, kind: str, uuid_param: str, uid_param: str) -> Clause:
    """The objects of ``kind`` named by entryUUID(s) or uniqueId(s) (the binder made it exactly one of them)."""
    if uuid_param in ctx.args:
        return (objects.c.kind == kind) & objects.c.id.in_(ctx.args.many(uuid_param))
    return (objects.c.kind == kind) & objects.c.unique_id.in_(ctx.args.many(uid_param))


def _rows(ctx: Context, *clauses: Any) -> list[Any]:
    """Each SELECT is capped at the limit; the answer as a whole is checked after pruning."""
    return ctx.fetch(ctx.select().where(*clauses).order_by(*_ORDER))


def _content_filters(ctx: Context) -> list[Clause]:
    return [*type_clauses(ctx.args), *code_clauses(ctx.args, (DE_FORMAT_CODE, DE_CONFIDENTIALITY_CODE))]


def _touching(id_list: Any) -> Clause:
    return or_(objects.c.source_object.in_(id_list), objects.c.target_object.in_(id_list))


def get_documents(ctx: Context) -> Outcome:
    return Outcome(_rows(ctx, _identified(ctx, DOCUMENT, DE_ENTRY_UUID, DE_UNIQUE_ID)))


def get_folders(ctx: Context) -> Outcome:
    return Outcome(_rows(ctx, _identified(ctx, FOLDER, FOLDER_ENTRY_UUID, FOLDER_UNIQUE_ID)))


def get_associations(ctx: Context) -> Outcome:
    """Associations with one of the given entryUUIDs as source or target."""
    return Outcome(_rows(ctx, objects.c.kind == ASSOCIATION, _touching(ctx.args.many(UUID))))


def get_documents_and_associations(ctx: Context) -> Outcome:
    documents = _rows(ctx, _identified(ctx, DOCUMENT, DE_ENTRY_UUID, DE_UNIQUE_ID))
    if not documents:
        return Outcome()
    links = _rows(ctx, objects.c.kind == ASSOCIATION, _touching(ids(documents)))
    return Outcome(unique_rows(documents, links))


def get_submission_sets(ctx: Context) -> Outcome:
    """SubmissionSets holding (HasMember) the given objects, and those HasMember Associations."""
    links = _rows(
        ctx,
        objects.c.kind == ASSOCIATION,
        objects.c.association_type == ebxml.HAS_MEMBER,
        objects.c.target_object.in_(ctx.args.many(UUID)),
    )
    sources = sorted({row.source_object for row in links})
    packages = _rows(ctx, objects.c.kind == SUBMISSION_SET, objects.c.id.in_(sources)) if sources else []
    held = set(ids(packages))
    return Outcome(unique_rows(packages, (row for row in links if row.source_object in held)))


def get_submission_set_and_contents(ctx: Context) -> Outcome:
    """The SubmissionSet, its members (DocumentEntries filtered), Folder-Document links among them.

    Associations end up in the answer only if both their ends do (a HasMember
    of a filtered-out DocumentEntry goes with it).
    """
    packages = _rows(ctx, _identified(ctx, SUBMISSION_SET, SS_ENTRY_UUID, SS_UNIQUE_ID))
    if not packages:
        return Outcome()
    members = select(objects.c.target_object).where(
        objects.c.kind == ASSOCIATION,
        objects.c.association_type == ebxml.HAS_MEMBER,
        objects.c.source_object.in_(ids(packages)),
    )
    links = _rows(
        ctx,
        objects.c.kind == ASSOCIATION,
        objects.c.association_type == ebxml.HAS_MEMBER,
        objects.c.source_object.in_(ids(packages)),
    )
    documents = _rows(ctx, objects.c.kind == DOCUMENT, objects.c.id.in_(members), *_content_filters(ctx))
    folders = _rows(ctx, objects.c.kind == FOLDER, objects.c.id.in_(members))
    inner = _rows(ctx, objects.c.kind == ASSOCIATION, objects.c.id.in_(members))
    filed: list[Any] = []
    if folders and documents:
        filed = _rows(
            ctx,
            objects.c.kind == ASSOCIATION,
            objects.c.association_type == ebxml.HAS_MEMBER,
            objects.c.source_object.in_(ids(folders)),
            objects.c.target_object.in_(ids(documents)),
        )
    rows = unique_rows(packages, links, documents, folders, inner, filed)
    return Outcome(prune_associations(rows))


def get_folder_and_contents(ctx: Context) -> Outcome:
    """The Folder, its DocumentEntries (filtered) and the HasMember Associations to those."""
    folders = _rows(ctx, _identified(ctx, FOLDER, FOLDER_ENTRY_UUID, FOLDER_UNIQUE_ID))
    if not folders:
        return Outcome()
    links = _rows(
        ctx,
        objects.c.kind == ASSOCIATION,
        objects.c.association_type == ebxml.HAS_MEMBER,
        objects.c.source_object.in_(ids(folders)),
    )
    members = {row.target_object for row in links}
    documents = _rows(ctx, objects.c.kind == DOCUMENT, objects.c.id.in_(sorted(members)), *_content_filters(ctx))
    kept = set(ids(documents))
    return Outcome([*folders, *documents, *(row for row in links if row.target_object in kept)])


def get_folders_for_document(ctx: Context) -> Outcome:
    """The Folders that hold (HasMember) the DocumentEntry."""
    documents = select(objects.c.id).where(_identified(ctx, DOCUMENT, DE_ENTRY_UUID, DE_UNIQUE_ID))
    holders = select(objects.c.source_object).where(
        objects.c.kind == ASSOCIATION,
        objects.c.association_type == ebxml.HAS_MEMBER,
        objects.c.target_object.in_(documents),
    )
    return Outcome(_rows(ctx, objects.c.kind == FOLDER, objects.c.id.in_(holders)))


def get_related_documents(ctx: Context) -> Outcome:
    """The DocumentEntry, the DocumentEntries related to it by $AssociationTypes, and those Associations.

    Nothing when it has no related DocumentEntry; $XDSDocumentEntryType
    (stable only by default) filters the related ones.
    """
    origins = _rows(ctx, _identified(ctx, DOCUMENT, DE_ENTRY_UUID, DE_UNIQUE_ID))
    if not origins:
        return Outcome()
    origin_ids = set(ids(origins))
    links = _rows(
        ctx,
        objects.c.kind == ASSOCIATION,
        objects.c.association_type.in_(ctx.args.many(ASSOCIATION_TYPES)),
        _touching(sorted(origin_ids)),
    )
    others = {end for row in links for end in (row.source_object, row.target_object)} - origin_ids
    if not others:
        return Outcome()
    related = _rows(ctx, objects.c.kind == DOCUMENT, objects.c.id.in_(sorted(others)), *type_clauses(ctx.args))
    if not related:
        return Outcome()
    kept = origin_ids | set(ids(related))
    return Outcome([*origins, *related, *(row for row in links if {row.source_object, row.target_object} <= kept)])
