"""``esb_worklist_items``: one row per Scheduled Procedure Step, what a modality's worklist query matches.

Matching keys are columns (PS3.4 K.6.1.2: Scheduled Station AE Title, Modality,
Scheduled Procedure Step Start Date and Time, Patient's Name, Patient ID,
Accession Number, Requested Procedure ID, Study Instance UID); the rest of
the item, as it is answered, is the DICOM JSON in ``attributes``. Person
names are kept as DICOM PN (``WANG^XIAODONG=王^小东``) and once more upper-cased
for case-insensitive matching. An item is unique by (accession number,
scheduled procedure step ID): a changed order updates its row.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table, UniqueConstraint

from esb.journal.schema import metadata

#: Scheduled Procedure Step Status (0040,0020); a worklist answers SCHEDULED items unless asked otherwise
SCHEDULED, ARRIVED, STARTED, COMPLETED, DISCONTINUED = "SCHEDULED", "ARRIVED", "STARTED", "COMPLETED", "DISCONTINUED"

items = Table(
    "esb_worklist_items",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("accession_number", String(16), nullable=False),
    Column("sps_id", String(16), nullable=False),
    Column("requested_procedure_id", String(16), nullable=False),
    Column("study_uid", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("issuer", String(64), nullable=False),
    Column("patient_name", String(200), nullable=False),
    Column("patient_name_key", String(200), nullable=False),  # upper-cased, for matching
    Column("modality", String(16), nullable=False),
    Column("station_ae", String(16), nullable=False),
    Column("start_date", String(8), nullable=False),  # YYYYMMDD
    Column("start_time", String(13), nullable=False),  # HHMMSS.ffffff, for range matching
    Column("performing_physician", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("placer_order", String(64), nullable=False),
    Column("filler_order", String(64), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("accession_number", "sps_id", name="uq_esb_worklist_items_step"),
    Index("ix_esb_worklist_items_station", "station_ae", "start_date"),
    Index("ix_esb_worklist_items_modality", "modality", "start_date"),
    Index("ix_esb_worklist_items_patient", "patient_id"),
    Index("ix_esb_worklist_items_status", "status", "start_date"),
)

#: Performed Procedure Step Status (0040,0252)
IN_PROGRESS, PERFORMED_COMPLETED, PERFORMED_DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"

performed = Table(
    "esb_worklist_performed",
    metadata,
    Column("sop_uid", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("station_ae", String(16), nullable=False),
    Column("modality", String(16), nullable=False),
    Column("accession_numbers", String(200), nullable=False),  # backslash-separated, as DICOM lists them
    Column("attributes", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_esb_worklist_performed_status", "status", "updated_at"),
)
