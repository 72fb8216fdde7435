"""A validated submission as table rows: ids rewritten, registry attributes set, side tables filled.

The stored ``xml`` of each object is its element as a LeafClass answer returns
it: entryUUIDs for symbolic ids (and in every reference to them), ``lid`` =
``id``, ``status`` Approved, a Folder's ``lastUpdateTime`` slot set by the
registry. Replacement (RPLC, XFRM_RPLC) deprecates the original and gives the
replacement the original's Folder memberships (ITI TF-3 4.2.2.2).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from lxml import etree
from sqlalchemy import Connection

from esb.errors import XdsError
from profiles.xds import ebxml
from profiles.xds.ebxml import RIM, q
from profiles.xds.registry import schema, store
from profiles.xds.registry.checks import Context
from profiles.xds.registry.metadata import Association, DocumentEntry, Folder, RegistryObject, SubmissionSet
from profiles.xds.registry.patients import PatientId

#: coded attributes copied into the codes table, per kind
CODED_SCHEMES = {
    schema.DOCUMENT: (
        ebxml.DE_CLASS_CODE,
        ebxml.DE_TYPE_CODE,
        ebxml.DE_PRACTICE_SETTING_CODE,
        ebxml.DE_HEALTHCARE_FACILITY_TYPE_CODE,
        ebxml.DE_EVENT_CODE,
        ebxml.DE_CONFIDENTIALITY_CODE,
        ebxml.DE_FORMAT_CODE,
    ),
    schema.SUBMISSION_SET: (ebxml.SS_CONTENT_TYPE_CODE,),
    schema.FOLDER: (ebxml.FOLDER_CODE_LIST,),
}
AUTHOR_SCHEMES = (ebxml.DE_AUTHOR, ebxml.SS_AUTHOR)
REFERENCE_ID_LIST = "urn:ihe:iti:xds:2013:referenceIdList"


class Writer:
    """Collects the rows of one submission, then writes them (store.insert) in the caller's transaction."""

    def __init__(self, ctx: Context, home_community_id: str) -> None:
        self.ctx = ctx
        self.home = home_community_id
        self.registered_at = store.now()
        self.stamp = store.dtm_now()
        self.rows: list[dict[str, Any]] = []
        self.codes: list[dict[str, Any]] = []
        self.values: list[dict[str, Any]] = []
        submission_set = ctx.submission.submission_set
        self.submission = ctx.ref(submission_set.id) if submission_set is not None else None
        self.patient = str(ctx.patient) if ctx.patient is not None else None

    def write(self, conn: Connection) -> None:
        for obj in self.ctx.submission.objects:
            self._object(obj)
        self._replacements(conn)
        store.touch_folders(conn, self.ctx.touched_folders, self.stamp)
        store.insert(conn, self.rows, self.codes, self.values)

    def _object(self, obj: RegistryObject) -> None:
        ctx = self.ctx
        entry = ctx.ref(obj.id)
        element = obj.element
        element.set("id", entry)
        element.set("lid", entry)
        element.set("status", ebxml.APPROVED)
        for item in obj.classifications:
            item.element.set("id", ctx.ref(item.id))
            item.element.set("classifiedObject", entry)
        for ext in obj.external_ids:
            ext.element.set("id", ctx.ref(ext.id))
            ext.element.set("registryObject", entry)
        row = self._common(entry, obj)
        if isinstance(obj, DocumentEntry):
            row.update(self._document(obj))
        elif isinstance(obj, SubmissionSet):
            row.update(kind=schema.SUBMISSION_SET, submission_time=store.pad_dtm(obj.slot("submissionTime")))
            row["source_id"] = obj.external(ebxml.SS_SOURCE_ID)
        elif isinstance(obj, Folder):
            store.set_slot(element, "lastUpdateTime", self.stamp)
            row.update(kind=schema.FOLDER, last_update_time=self.stamp)
        elif isinstance(obj, Association):
            element.set("sourceObject", ctx.ref(obj.source))
            element.set("targetObject", ctx.ref(obj.target))
            row.update(
                kind=schema.ASSOCIATION,
                association_type=obj.type,
                source_object=ctx.ref(obj.source),
                target_object=ctx.ref(obj.target),
                unique_id=None,
            )
        row["xml"] = etree.tostring(copy.deepcopy(element))
        self.rows.append(row)
        self._side_tables(entry, row["kind"], obj)

    def _common(self, entry: str, obj: RegistryObject) -> dict[str, Any]:
        patient = PatientId.parse(obj.patient_id) if obj.patient_id else None
        return {
            "id": entry,
            "lid": entry,
            "status": ebxml.APPROVED,
            "unique_id": obj.unique_id,
            "patient_id": str(patient) if patient is not None else self.patient,
            "home_community_id": self.home,
            "registered_at": self.registered_at,
            "submission": self.submission,
        }

    def _document(self, doc: DocumentEntry) -> dict[str, Any]:
        size = doc.slot("size")
        return {
            "kind": schema.DOCUMENT,
            "object_type": doc.object_type,
            "mime_type": doc.mime_type,
            "hash": doc.slot("hash"),
            "size": int(size) if size is not None else None,
            "repository_unique_id": doc.slot("repositoryUniqueId"),
            "creation_time": store.pad_dtm(doc.slot("creationTime")),
            "service_start_time": store.pad_dtm(doc.slot("serviceStartTime")),
            "service_stop_time": store.pad_dtm(doc.slot("serviceStopTime")),
        }

    def _side_tables(self, entry: str, kind: str, obj: RegistryObject) -> None:
        for scheme in CODED_SCHEMES.get(kind, ()):
            for item in obj.codes(scheme):
                if item.code and item.coding_scheme:
                    self.codes.append(
                        {"object_id": entry, "scheme": scheme, "code": item.code, "coding_scheme": item.coding_scheme}
                    )
        for scheme in AUTHOR_SCHEMES:
            for item in obj.codes(scheme):
                for person in item.slots.get("authorPerson", []):
                    if person:
                        self.values.append({"object_id": entry, "name": "author_person", "value": person})
        if kind == schema.DOCUMENT:
            for reference in obj.slots.get(REFERENCE_ID_LIST, []):
                if reference:
                    self.values.append({"object_id": entry, "name": "reference_id", "value": reference})

    def _replacements(self, conn: Connection) -> None:
        """Deprecate each replaced original; its Folders get the replacement too (and a new lastUpdateTime)."""
        explicit = {
            (self.ctx.ref(a.source), self.ctx.ref(a.target))
            for a in self.ctx.submission.associations
            if a.type == ebxml.HAS_MEMBER
        }
        for replacement, original in self.ctx.replaced:
            if not store.set_status(conn, original, ebxml.DEPRECATED, only_if=ebxml.APPROVED):
                raise XdsError(
                    "the replaced DocumentEntry was deprecated meanwhile",
                    code="XDSRegistryDeprecatedDocumentError",
                    location=original,
                )
            for folder in store.folders_of(conn, original):
                if (folder, replacement) not in explicit:
                    self._folder_member(folder, replacement)
                    self.ctx.touched_folders.add(folder)

    def _folder_member(self, folder: str, document: str) -> None:
        entry = f"urn:uuid:{uuid.uuid4()}"
        element = etree.Element(q("rim", "Association"), nsmap={"rim": RIM})
        for key, value in (
            ("id", entry),
            ("lid", entry),
            ("status", ebxml.APPROVED),
            ("associationType", ebxml.HAS_MEMBER),
            ("sourceObject", folder),
            ("targetObject", document),
        ):
            element.set(key, value)
        self.rows.append(
            {
                "id": entry,
                "kind": schema.ASSOCIATION,
                "lid": entry,
                "status": ebxml.APPROVED,
                "patient_id": self.patient,
                "home_community_id": self.home,
                "registered_at": self.registered_at,
                "submission": self.submission,
                "association_type": ebxml.HAS_MEMBER,
                "source_object": folder,
                "target_object": document,
                "xml": etree.tostring(element),
            }
        )
