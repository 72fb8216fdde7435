"""Checks of a submission as a whole, against itself and the registry (ITI TF-2b 3.42.4.1.3).

rules.py checks each object alone; here are the relations: one SubmissionSet,
ids and their references, patient identity (the EMPI master ID), uniqueIds,
and the associations (HasMember, RPLC, APND, XFRM, XFRM_RPLC, signs,
IsSnapshotOf). Everything is read-only: the registry writes only when the
list of errors comes back empty.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row

from esb.errors import XdsError
from profiles.xds import ebxml
from profiles.xds.registry import rules, schema, store
from profiles.xds.registry.codesets import CodeSets
from profiles.xds.registry.metadata import Association, DocumentEntry, Folder, RegistryObject, Submission, SubmissionSet
from profiles.xds.registry.patients import PatientId, patient_group, patient_status

METADATA = "XDSRegistryMetadataError"
UNRESOLVED = "UnresolvedReferenceException"
ASSOCIATION_TYPES = (ebxml.HAS_MEMBER, *ebxml.RELATIONSHIPS)
#: relationships whose target must be an Approved DocumentEntry already registered
TO_REGISTERED_DOCUMENT = (ebxml.RPLC, ebxml.APND, ebxml.XFRM, ebxml.XFRM_RPLC, ebxml.IS_SNAPSHOT_OF)
#: ... and for which a Deprecated target is XDSRegistryDeprecatedDocumentError
NOT_TO_DEPRECATED = (ebxml.RPLC, ebxml.APND, ebxml.XFRM, ebxml.XFRM_RPLC)

Target = RegistryObject | Row[Any]


@dataclass
class Context:
    """A submission under validation, and what the registry needs to write it afterwards."""

    submission: Submission
    ids: dict[str, str] = field(default_factory=dict)  # submitted id -> entryUUID
    existing: dict[str, Row[Any]] = field(default_factory=dict)  # referenced registry objects
    patient: PatientId | None = None  # the SubmissionSet's
    group: list[str] = field(default_factory=list)  # the patient and every ID merged into it
    replaced: list[tuple[str, str]] = field(default_factory=list)  # (new document, original), entryUUIDs
    touched_folders: set[str] = field(default_factory=set)  # registered Folders getting new members
    errors: list[XdsError] = field(default_factory=list)

    def ref(self, submitted: str) -> str:
        """The entryUUID a reference means after symbolic ids are replaced."""
        return self.ids.get(submitted, submitted)

    def fail(self, text: str, location: str, code: str = METADATA) -> None:
        self.errors.append(XdsError(text, code=code, location=location))


def validate(conn: Connection, submission: Submission, *, master_oid: str, code_sets: CodeSets) -> Context:
    ctx = Context(submission)
    for problem in submission.problems:
        ctx.fail(problem.text, problem.location, problem.code)
    if len(submission.submission_sets) != 1:
        ctx.fail(f"a submission has exactly one SubmissionSet, this one has {len(submission.submission_sets)}", "")
    _assign_ids(conn, ctx)
    for obj in submission.objects:
        ctx.errors.extend(rules.check(obj, code_sets))
    _patients(conn, ctx, master_oid)
    _unique_ids(conn, ctx)
    _associations(conn, ctx)
    return ctx


def _assign_ids(conn: Connection, ctx: Context) -> None:
    """Symbolic ids get fresh UUIDs (ITI TF-3 4.2.3, entryUUID); urn:uuid ids must be new and well formed."""
    sub = ctx.submission
    seen: set[str] = set()
    given: list[tuple[str, str]] = []  # (entryUUID, location) of objects submitted with a UUID
    for obj in sub.objects:
        parts: list[tuple[str, bool]] = [(obj.id, True)]
        parts += [(c.id, False) for c in obj.classifications] + [(e.id, False) for e in obj.external_ids]
        for item_id, is_object in parts:
            if not item_id:
                continue  # reported by the parser / schema
            if item_id in seen:
                ctx.fail(f"id {_short(item_id)} is used twice in the submission", obj.id)
                continue
            seen.add(item_id)
            if item_id.startswith("urn:uuid:"):
                if not _is_uuid(item_id[9:]):
                    ctx.fail(f"id {_short(item_id)} is not a well-formed urn:uuid", obj.id)
                ctx.ids[item_id] = item_id
                if is_object:
                    given.append((item_id, obj.id))
            else:
                ctx.ids[item_id] = f"urn:uuid:{uuid.uuid4()}"
        lid = obj.element.get("lid")
        if lid is not None and lid != obj.id:
            ctx.fail("lid differs from id: new versions are for Update Document Set (ITI-57)", obj.id)
    taken = store.get(conn, [entry for entry, _ in given])
    for entry, location in given:
        if entry in taken:
            ctx.fail(f"entryUUID {entry} is already in the registry", location)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower() and len(text) == 36
    except ValueError:
        return False


def _patients(conn: Connection, ctx: Context, master_oid: str) -> None:
    """One patient per submission, an active EMPI master ID (ITI TF-2b 3.42.4.1.3: XDSUnknownPatientId)."""
    submission_set = ctx.submission.submission_set
    if submission_set is None or submission_set.patient_id is None:
        return
    patient = PatientId.parse(submission_set.patient_id)
    if patient is None:
        return  # the rules reported its format
    ctx.patient = patient
    status = patient_status(conn, patient, master_oid)
    if status != "active":
        why = "is merged into another patient; submit with the surviving ID" if status == "merged" else "is unknown"
        ctx.fail(f"the patient ID {why} in the affinity domain", submission_set.id, "XDSUnknownPatientId")
    ctx.group = patient_group(conn, patient, master_oid)
    for obj in [*ctx.submission.documents, *ctx.submission.folders]:
        value = obj.patient_id
        other = PatientId.parse(value) if value else None
        if other is not None and str(other) != str(patient):
            ctx.fail(
                f"{type(obj).__name__}.patientId differs from SubmissionSet.patientId",
                obj.id,
                "XDSPatientIdDoesNotMatch",
            )


def _unique_ids(conn: Connection, ctx: Context) -> None:
    """Unique in the message; in the registry except a DocumentEntry re-registered with identical content."""
    owners: dict[str, RegistryObject] = {}
    for obj in [*ctx.submission.submission_sets, *ctx.submission.documents, *ctx.submission.folders]:
        value = obj.unique_id
        if not value:
            continue
        if value in owners:
            ctx.fail(
                f"uniqueId {_short(value)} is used by {owners[value].id} too",
                obj.id,
                "XDSRegistryDuplicateUniqueIdInMessage",
            )
        else:
            owners[value] = obj
    packages = [o for o in owners.values() if not isinstance(o, DocumentEntry)]
    for row in store.by_unique_id(conn, [p.unique_id or "" for p in packages], [schema.SUBMISSION_SET, schema.FOLDER]):
        obj = owners[row.unique_id]
        text = f"uniqueId {_short(row.unique_id)} is already in the registry"
        ctx.fail(text, obj.id, "XDSDuplicateUniqueIdInRegistry")
    documents = [o for o in owners.values() if isinstance(o, DocumentEntry)]
    for row in store.by_unique_id(conn, [d.unique_id or "" for d in documents], [schema.DOCUMENT]):
        doc = owners[row.unique_id]
        hash_value, size = doc.slot("hash"), doc.slot("size")
        if (hash_value or "").lower() != (row.hash or "").lower():
            ctx.fail(f"uniqueId {_short(row.unique_id)} is registered with another hash", doc.id, "XDSNonIdenticalHash")
        if size != (None if row.size is None else str(row.size)):
            ctx.fail(f"uniqueId {_short(row.unique_id)} is registered with another size", doc.id, "XDSNonIdenticalSize")


def _associations(conn: Connection, ctx: Context) -> None:
    sub = ctx.submission
    in_message = sub.by_id()
    wanted = [r for a in sub.associations for r in (a.source, a.target) if r not in in_message and r.startswith("urn:")]
    ctx.existing = store.get(conn, wanted + sub.object_refs)
    members: set[str] = set()
    replaced: dict[str, str] = {}
    for association in sub.associations:
        if association.type not in ASSOCIATION_TYPES:
            ctx.fail(f"unknown associationType {_short(association.type)}", association.id)
            continue
        source = in_message.get(association.source) or ctx.existing.get(association.source)
        target = in_message.get(association.target) or ctx.existing.get(association.target)
        for end, found in (("sourceObject", source), ("targetObject", target)):
            if found is None:
                reference = association.source if end == "sourceObject" else association.target
                text = f"{end} {_short(reference)} is neither in the submission nor in the registry"
                ctx.fail(text, association.id, UNRESOLVED)
        if source is None or target is None:
            continue
        if association.type == ebxml.HAS_MEMBER:
            _has_member(ctx, association, source, target, members)
        else:
            _relationship(ctx, association, source, target, replaced)
    for obj in [*sub.documents, *sub.folders]:
        if obj.id not in members:
            ctx.fail(f"{type(obj).__name__} is not a member (HasMember) of the SubmissionSet", obj.id)


def _has_member(ctx: Context, association: Association, source: Target, target: Target, members: set[str]) -> None:
    status = association.slots.get("SubmissionSetStatus")
    if isinstance(source, SubmissionSet):
        if isinstance(target, RegistryObject):
            members.add(target.id)
            if isinstance(target, DocumentEntry) and status != ["Original"]:
                text = "a SubmissionSet HasMember to a new DocumentEntry needs SubmissionSetStatus Original"
                ctx.fail(text, association.id)
            return
        if target.kind == schema.DOCUMENT:
            if status != ["Reference"]:
                text = "a SubmissionSet HasMember to a registered DocumentEntry needs SubmissionSetStatus Reference"
                ctx.fail(text, association.id)
            _same_patient(ctx, target, association.id)
            return
        ctx.fail("a SubmissionSet may reference only DocumentEntries already registered", association.id)
        return
    if _kind(source) != schema.FOLDER:
        ctx.fail("HasMember must start at the SubmissionSet or at a Folder", association.id)
        return
    if _kind(target) != schema.DOCUMENT:
        ctx.fail("a Folder's members are DocumentEntries", association.id)
        return
    for end in (source, target):
        if not isinstance(end, RegistryObject):
            _same_patient(ctx, end, association.id)
    if not isinstance(source, RegistryObject):
        ctx.touched_folders.add(source.id)


def _relationship(
    ctx: Context, association: Association, source: Target, target: Target, replaced: dict[str, str]
) -> None:
    """RPLC, APND, XFRM, XFRM_RPLC, signs, IsSnapshotOf: ITI TF-3 4.2.2.2."""
    kind = association.type.rsplit(":", 1)[-1]
    if not isinstance(source, DocumentEntry):
        ctx.fail(f"the source of {kind} must be a DocumentEntry of the submission", association.id)
        return
    if association.type == ebxml.SIGNS:
        if not isinstance(target, RegistryObject):
            _same_patient(ctx, target, association.id)
        return
    if isinstance(target, RegistryObject) or target.kind != schema.DOCUMENT:
        ctx.fail(f"the target of {kind} must be a DocumentEntry already in the registry", association.id)
        return
    _same_patient(ctx, target, association.id)
    if association.type in NOT_TO_DEPRECATED and target.status != ebxml.APPROVED:
        text = f"the target of {kind} is not an Approved DocumentEntry"
        ctx.fail(text, association.id, "XDSRegistryDeprecatedDocumentError")
        return
    if association.type == ebxml.IS_SNAPSHOT_OF:
        if target.object_type != ebxml.ON_DEMAND_DOCUMENT or source.on_demand:
            ctx.fail("IsSnapshotOf goes from a stable to an On-Demand DocumentEntry", association.id)
        return
    if association.type in ebxml.REPLACING:
        if target.id in replaced:
            ctx.fail(f"{target.id} is replaced twice in the submission", association.id)
            return
        replaced[target.id] = source.id
        ctx.replaced.append((ctx.ref(source.id), target.id))


def _same_patient(ctx: Context, row: Row[Any], location: str) -> None:
    """A registered object linked to the submission must be the same patient's (or merged into it)."""
    if ctx.patient is not None and row.patient_id not in ctx.group:
        ctx.fail("the associated registered object belongs to another patient", location, "XDSPatientIdDoesNotMatch")


def _kind(obj: Target) -> str:
    if isinstance(obj, DocumentEntry):
        return schema.DOCUMENT
    if isinstance(obj, Folder):
        return schema.FOLDER
    if isinstance(obj, SubmissionSet):
        return schema.SUBMISSION_SET
    if isinstance(obj, RegistryObject):
        return schema.ASSOCIATION
    return str(obj.kind)


def _short(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
