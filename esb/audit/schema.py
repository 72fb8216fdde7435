"""Audit records in the engine's database: the durable buffer towards the ARR and the local store.

One row per audit message, written by the trail's writer thread and kept
after the Audit Record Repository took it (``sent_at``), for ``esb audit
search`` and the report, until the retention ends. Unsent rows are never
pruned. The search columns (event, action, outcome, user, node) repeat what
the XML says so a search needs no XML parsing; patients get a table of their
own because one message may name several (a PIX query, a merge).

Claiming for the sender: ``claimed_by``/``lease_until`` make a row one node's
for the lease, so nodes sharing the database share the buffer; after a failed
send ``lease_until`` is the next attempt (backoff) and ``claimed_by`` is cleared.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from esb.journal.schema import metadata

records = Table(
    "esb_audit_records",
    metadata,
    Column("id", String(32), primary_key=True),
    # EventDateTime, naive UTC like every journal timestamp
    Column("created_at", DateTime, nullable=False),
    Column("event_id", String(16), nullable=False),  # EventID csd-code (110110)
    Column("event_type", String(64), nullable=False),  # first EventTypeCode (ITI-8, 110120), "" when none
    Column("action", String(1), nullable=False),
    Column("outcome", Integer, nullable=False),
    Column("user_id", String(256), nullable=False),  # the requestor's UserID
    Column("source_node", String(200), nullable=False),  # AuditSourceID
    Column("xml", Text, nullable=False),
    Column("sent_at", DateTime),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("claimed_by", String(200)),
    Column("lease_until", DateTime),
    Index("ix_esb_audit_records_unsent", "sent_at", "lease_until"),
    Index("ix_esb_audit_records_created", "created_at"),
    Index("ix_esb_audit_records_user", "user_id", "created_at"),
    Index("ix_esb_audit_records_event", "event_id", "created_at"),
)

patients = Table(
    "esb_audit_patients",
    metadata,
    Column("record_id", String(32), ForeignKey("esb_audit_records.id", ondelete="CASCADE"), primary_key=True),
    Column("patient_id", String(256), primary_key=True),  # CX form, as in the message
    Index("ix_esb_audit_patients_patient", "patient_id"),
)
