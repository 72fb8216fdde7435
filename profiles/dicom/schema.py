"""The archive's index: patients, studies, series and instances, in the engine's one database.

The bytes live in a :class:`esb.storage.BlobStore` under ``storage_key``
(index and storage are separate, B5.3). Each level keeps:

- the values C-FIND matches on, in indexed columns, normalized for matching
  (person names upper-cased, times padded to ``HHMMSS.FFFFFF``); empty is ``""``,
  never NULL, so a comparison needs no NULL case;
- ``attributes``: the level's attributes as received, as DICOM JSON (PS3.18 F.2),
  which is what a response returns (the exact values, multi-valued ones and
  sequences included);
- the counts a response computes (NumberOfStudyRelatedInstances...), kept up to
  date on every store, so a query never counts rows (one indexed query per
  request, at 100,000 studies and more).

Patients are keyed by (Patient ID, Issuer of Patient ID) as received: the EMPI
master patient is resolved at query time (:mod:`profiles.dicom.empi_link`), so an
EMPI merge needs no rewrite here.

A study is ``received`` while instances arrive, ``complete`` once none came for
``study_complete_after`` (its KOS is due) and ``archived`` once the KOS was
published; a new instance puts it back to ``received`` (it needs a new KOS).
An instance without ``storage_key`` is known but not kept (on-demand: listed by
a KOS or a remote query; ``source`` says where to fetch it); a fetched copy
stays until ``expires_at``.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String, Table, UniqueConstraint

from esb.journal.schema import metadata

RECEIVED, COMPLETE, ARCHIVED = "received", "complete", "archived"
ONLINE, NEARLINE = "ONLINE", "NEARLINE"

patients = Table(
    "esb_dicom_patients",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("patient_id", String(200), nullable=False),
    Column("issuer", String(200), nullable=False),  # Issuer of Patient ID (0010,0021), "" when absent
    Column("issuer_uid", String(200), nullable=False),  # its Universal Entity ID (0010,0024), when sent
    Column("name_upper", String(400), nullable=False),
    Column("birth_date", String(8), nullable=False),
    Column("sex", String(16), nullable=False),
    Column("num_studies", Integer, nullable=False),
    Column("num_series", Integer, nullable=False),
    Column("num_instances", Integer, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("patient_id", "issuer", name="uq_esb_dicom_patients_id"),
    Index("ix_esb_dicom_patients_name", "name_upper"),
    Index("ix_esb_dicom_patients_birth", "birth_date"),
)

studies = Table(
    "esb_dicom_studies",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("patient_pk", Integer, nullable=False),
    Column("study_uid", String(128), nullable=False),
    Column("study_date", String(8), nullable=False),
    Column("study_time", String(16), nullable=False),
    Column("accession", String(64), nullable=False),
    Column("study_id", String(64), nullable=False),
    Column("description", String(400), nullable=False),
    Column("referring_upper", String(400), nullable=False),
    Column("modalities", String(200), nullable=False),  # ModalitiesInStudy, backslash-separated
    Column("num_series", Integer, nullable=False),
    Column("num_instances", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),  # the last instance stored
    Column("completed_at", DateTime),
    UniqueConstraint("study_uid", name="uq_esb_dicom_studies_uid"),
    Index("ix_esb_dicom_studies_patient", "patient_pk"),
    Index("ix_esb_dicom_studies_date", "study_date", "study_time"),
    Index("ix_esb_dicom_studies_accession", "accession"),
    Index("ix_esb_dicom_studies_study_id", "study_id"),
    Index("ix_esb_dicom_studies_status", "status", "updated_at"),
)

series = Table(
    "esb_dicom_series",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("study_pk", Integer, nullable=False),
    Column("series_uid", String(128), nullable=False),
    Column("modality", String(16), nullable=False),
    Column("series_number", Integer),
    Column("description", String(400), nullable=False),
    Column("body_part", String(64), nullable=False),
    Column("series_date", String(8), nullable=False),
    Column("pps_start_date", String(8), nullable=False),
    Column("pps_start_time", String(16), nullable=False),
    Column("num_instances", Integer, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("series_uid", name="uq_esb_dicom_series_uid"),
    Index("ix_esb_dicom_series_study", "study_pk", "series_number"),
    Index("ix_esb_dicom_series_modality", "modality", "study_pk"),
)

instances = Table(
    "esb_dicom_instances",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("series_pk", Integer, nullable=False),
    Column("sop_uid", String(128), nullable=False),
    Column("sop_class_uid", String(128), nullable=False),
    Column("instance_number", Integer),
    Column("transfer_syntax", String(128), nullable=False),
    Column("storage_key", String(200)),  # None: known only (on-demand), not kept
    Column("size", BigInteger, nullable=False),
    Column("sha1", String(40)),
    Column("availability", String(16), nullable=False),  # ONLINE | NEARLINE
    Column("source", String(1000), nullable=False),  # remote AE or WADO URL of an on-demand instance
    Column("calling_ae", String(16), nullable=False),  # who sent it (C-STORE calling AE)
    Column("expires_at", DateTime),  # a cached on-demand copy goes then
    Column("attributes", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("sop_uid", name="uq_esb_dicom_instances_uid"),
    Index("ix_esb_dicom_instances_series", "series_pk", "instance_number"),
    Index("ix_esb_dicom_instances_key", "storage_key"),
    Index("ix_esb_dicom_instances_expires", "expires_at"),
)
