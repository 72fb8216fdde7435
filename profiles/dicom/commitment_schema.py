"""Storage commitment requests (PS3.4 Annex J) waiting for, or done with, their N-EVENT-REPORT.

An N-ACTION is answered once its row is committed here; the report goes out
later on an association of our own to the requester (the timer route
``dicom-commitment``), so a request outlives an engine restart and any node
may send its report. ``refs`` is the Referenced SOP Sequence as JSON pairs
(SOP Class UID, SOP Instance UID): UIDs only, no patient data.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from esb.journal.schema import metadata

#: pending until the report was taken by the requester (sent) or the attempts ran out (failed)
PENDING, SENT, FAILED = "pending", "sent", "failed"

commitments = Table(
    "esb_dicom_commitments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("transaction_uid", String(64), nullable=False),
    Column("calling_ae", String(16), nullable=False),
    Column("remote", String(64), nullable=False),  # the key of remote_aes the report goes to
    Column("refs", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("lease_until", DateTime),
    Column("requested_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
    Column("committed", Integer),  # instances reported committed / failed, once sent
    Column("failed", Integer),
    Column("error", Text),  # the last attempt's failure: statuses and classes, never patient data
    Index("ix_esb_dicom_commitments_due", "status", "next_attempt_at"),
    Index("ix_esb_dicom_commitments_transaction", "transaction_uid"),
)
