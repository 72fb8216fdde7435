"""EMPI tables, in the engine's one database beside the journal.

Records are stored whole as JSON (the standardized :class:`PatientRecord`);
what queries filter on is copied into indexed columns, and blocking keys go
to their own table so candidates for a new record are one indexed lookup even
with millions of patients.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, Float, Index, Integer, String, Table, Text, UniqueConstraint

from esb.journal.schema import metadata

#: Assigning authorities: the master domain and every local one.
domains = Table(
    "esb_empi_domains",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("universal_id", String(200), nullable=False),
    Column("universal_id_type", String(20), nullable=False),
    Column("kind", String(16), nullable=False),  # master | local
    Column("description", Text),
    Column("auto_registered", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

#: A person: what the master ID names. Never deleted; merged or retired.
persons = Table(
    "esb_empi_persons",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # active | merged | retired
    Column("merged_into", String(64)),
    Column("golden", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

#: A patient as one source system knows it, keyed by (domain, local id).
patients = Table(
    "esb_empi_patients",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("domain_key", String(200), nullable=False),
    Column("local_id", String(200), nullable=False),
    Column("person_id", String(64)),
    # how the patient came to its person: auto | review | manual | asserted
    Column("link_kind", String(16), nullable=False),
    Column("link_weight", Float),
    Column("status", String(16), nullable=False),  # active | merged | deleted
    Column("merged_into", String(32)),
    Column("record", JSON, nullable=False),
    Column("source", String(400)),
    Column("event_time", String(32)),
    Column("version", Integer, nullable=False),
    # copies of standardized fields for PDQ
    Column("family", String(200)),
    Column("given", String(200)),
    Column("family_pinyin", String(200)),
    Column("given_pinyin", String(200)),
    Column("birth_date", String(8)),
    Column("sex", String(1)),
    Column("national_id", String(18)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("domain_key", "local_id", name="uq_esb_empi_patients_local"),
    Index("ix_esb_empi_patients_person", "person_id"),
    Index("ix_esb_empi_patients_pinyin", "family_pinyin", "given_pinyin"),
    Index("ix_esb_empi_patients_name", "family", "given"),
    Index("ix_esb_empi_patients_birth", "birth_date"),
    Index("ix_esb_empi_patients_national_id", "national_id"),
)

#: Every identifier a source asserted for a patient (PID-3 repeats), for PIX.
identifiers = Table(
    "esb_empi_identifiers",
    metadata,
    Column("domain_key", String(200), nullable=False),
    Column("value", String(200), nullable=False),
    Column("patient_id", String(32), nullable=False),
    Column("type_code", String(10)),
    UniqueConstraint("domain_key", "value", name="uq_esb_empi_identifiers"),
    Index("ix_esb_empi_identifiers_patient", "patient_id"),
)

blocking = Table(
    "esb_empi_blocking",
    metadata,
    Column("key", String(200), nullable=False),
    Column("patient_id", String(32), nullable=False),
    UniqueConstraint("key", "patient_id", name="uq_esb_empi_blocking"),
    Index("ix_esb_empi_blocking_patient", "patient_id"),
)

#: Must-link / must-not-link decisions (A24/A37, reviewers): they survive re-matching.
assertions = Table(
    "esb_empi_assertions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("patient_a", String(32), nullable=False),
    Column("patient_b", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # must_link | must_not_link
    Column("active", Boolean, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Index("ix_esb_empi_assertions_a", "patient_a"),
    Index("ix_esb_empi_assertions_b", "patient_b"),
)

#: Suspected duplicates between the thresholds, with field-by-field evidence.
reviews = Table(
    "esb_empi_reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("patient_a", String(32), nullable=False),
    Column("patient_b", String(32), nullable=False),
    Column("weight", Float, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # open | linked | distinct | obsolete
    Column("created_at", DateTime, nullable=False),
    Column("decided_at", DateTime),
    Column("decided_by", String(200)),
    UniqueConstraint("patient_a", "patient_b", name="uq_esb_empi_reviews_pair"),
    Index("ix_esb_empi_reviews_status", "status"),
)

#: Everything that happened to a person or patient, so every change is reversible.
history = Table(
    "esb_empi_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False),
    Column("op", String(32), nullable=False),
    Column("person_id", String(64)),
    Column("patient_id", String(32)),
    Column("detail", JSON, nullable=False),
    Column("actor", String(200), nullable=False),
    Index("ix_esb_empi_history_person", "person_id"),
    Index("ix_esb_empi_history_patient", "patient_id"),
)

#: Bulk loads (A1.5): how many input rows each named load has committed, so a killed load resumes.
bulk_loads = Table(
    "esb_empi_bulk_loads",
    metadata,
    Column("name", String(400), primary_key=True),
    Column("rows_done", Integer, nullable=False),
    Column("loaded", Integer, nullable=False),
    Column("linked", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
)
