"""XDS registry tables, in the engine's one database beside the journal and the EMPI.

Each registry object keeps the ebRIM element it was registered with (``xml``),
so LeafClass answers return exactly what the source sent (plus the registry's
own status); what the stored queries filter on is copied into indexed columns,
and the multi-valued parts (codes, authors, reference ids) into two side tables,
so FindDocuments over a million entries is index lookups, never an XML scan.

Times are HL7 DTM strings right-padded with zeros to 14 digits
(``2004`` -> ``20040000000000``), so string order is time order on every dialect.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, LargeBinary, String, Table

from esb.journal.schema import metadata

#: kinds of registry object
DOCUMENT, SUBMISSION_SET, FOLDER, ASSOCIATION = "document", "submission_set", "folder", "association"

#: Every registry object: DocumentEntry, SubmissionSet, Folder, Association.
objects = Table(
    "esb_xds_objects",
    metadata,
    Column("id", String(64), primary_key=True),  # entryUUID (urn:uuid:...)
    Column("kind", String(16), nullable=False),
    Column("lid", String(64), nullable=False),
    Column("status", String(80), nullable=False),  # full StatusType URN
    Column("object_type", String(80)),  # DocumentEntry: stable / on-demand type UUID
    Column("unique_id", String(128)),
    Column("patient_id", String(256)),  # CX in the affinity domain (the EMPI master ID)
    Column("home_community_id", String(64)),
    Column("registered_at", DateTime, nullable=False),
    Column("submission", String(64)),  # entryUUID of the SubmissionSet that registered it
    # DocumentEntry
    Column("mime_type", String(100)),
    Column("hash", String(40)),
    Column("size", BigInteger),
    Column("repository_unique_id", String(128)),
    Column("creation_time", String(14)),
    Column("service_start_time", String(14)),
    Column("service_stop_time", String(14)),
    # SubmissionSet
    Column("submission_time", String(14)),
    Column("source_id", String(128)),
    # Folder
    Column("last_update_time", String(14)),
    # Association
    Column("association_type", String(80)),
    Column("source_object", String(64)),
    Column("target_object", String(64)),
    Column("xml", LargeBinary, nullable=False),
    Index("ix_esb_xds_objects_patient", "patient_id", "kind", "status"),
    Index("ix_esb_xds_objects_unique", "unique_id", "kind"),
    Index("ix_esb_xds_objects_source", "source_object", "association_type"),
    Index("ix_esb_xds_objects_target", "target_object", "association_type"),
    Index("ix_esb_xds_objects_lid", "lid"),
)

#: Coded classifications: (object, scheme UUID, code, coding scheme).
codes = Table(
    "esb_xds_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("object_id", String(64), nullable=False),
    Column("scheme", String(64), nullable=False),
    Column("code", String(256), nullable=False),
    Column("coding_scheme", String(256), nullable=False),
    Index("ix_esb_xds_codes_lookup", "scheme", "code", "coding_scheme", "object_id"),
    Index("ix_esb_xds_codes_object", "object_id"),
)

#: Other multi-valued query keys: ``author_person``, ``reference_id`` (referenceIdList).
values = Table(
    "esb_xds_values",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("object_id", String(64), nullable=False),
    Column("name", String(32), nullable=False),
    Column("value", String(512), nullable=False),
    Index("ix_esb_xds_values_lookup", "name", "value", "object_id"),
    Index("ix_esb_xds_values_object", "object_id"),
)
