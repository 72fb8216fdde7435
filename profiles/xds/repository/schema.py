"""XDS repository table: one row per stored document, pointing at its blob.

The bytes live in a :class:`esb.storage.BlobStore` under ``storage_key``; the
row says which document (repositoryUniqueId, uniqueId) they are and what ITI-43
answers with (mimeType) or checks against (size, hash). Blob keys are fresh
for each submission, never derived from the uniqueId, so a rejected or
concurrent submission can only ever delete its own blobs.

``status`` is ``pending`` from just before the metadata goes to the registry
(ITI-42) until the registry says Success, then ``available``. Retrieval serves
both: the registry may already have committed (and a consumer found the entry)
before the repository hears back. A crash in between leaves ``pending`` rows
that :mod:`profiles.xds.repository.sweep` settles.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, String, Table

from esb.journal.schema import metadata

PENDING, AVAILABLE = "pending", "available"

documents = Table(
    "esb_xds_documents",
    metadata,
    Column("repository_unique_id", String(128), primary_key=True),
    Column("unique_id", String(128), primary_key=True),  # XDSDocumentEntry.uniqueId
    Column("storage_key", String(200), nullable=False),
    Column("mime_type", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("hash", String(40), nullable=False),  # SHA-1, hex, lower case
    Column("status", String(16), nullable=False),
    Column("stored_at", DateTime, nullable=False),
    Column("registered_at", DateTime),
    Index("ix_esb_xds_documents_key", "storage_key"),
    Index("ix_esb_xds_documents_status", "status", "stored_at"),
)
