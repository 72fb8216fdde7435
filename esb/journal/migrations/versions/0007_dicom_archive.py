"""DICOM archive index: patients, studies, series and instances (the bytes are in a blob store).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "esb_dicom_patients",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(200), nullable=False),
        sa.Column("issuer", sa.String(200), nullable=False),
        sa.Column("issuer_uid", sa.String(200), nullable=False),
        sa.Column("name_upper", sa.String(400), nullable=False),
        sa.Column("birth_date", sa.String(8), nullable=False),
        sa.Column("sex", sa.String(16), nullable=False),
        sa.Column("num_studies", sa.Integer(), nullable=False),
        sa.Column("num_series", sa.Integer(), nullable=False),
        sa.Column("num_instances", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("patient_id", "issuer", name="uq_esb_dicom_patients_id"),
    )
    op.create_index("ix_esb_dicom_patients_birth", "esb_dicom_patients", ["birth_date"])
    op.create_index("ix_esb_dicom_patients_name", "esb_dicom_patients", ["name_upper"])

    op.create_table(
        "esb_dicom_studies",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(128), nullable=False),
        sa.Column("study_date", sa.String(8), nullable=False),
        sa.Column("study_time", sa.String(16), nullable=False),
        sa.Column("accession", sa.String(64), nullable=False),
        sa.Column("study_id", sa.String(64), nullable=False),
        sa.Column("description", sa.String(400), nullable=False),
        sa.Column("referring_upper", sa.String(400), nullable=False),
        sa.Column("modalities", sa.String(200), nullable=False),
        sa.Column("num_series", sa.Integer(), nullable=False),
        sa.Column("num_instances", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("study_uid", name="uq_esb_dicom_studies_uid"),
    )
    op.create_index("ix_esb_dicom_studies_accession", "esb_dicom_studies", ["accession"])
    op.create_index("ix_esb_dicom_studies_date", "esb_dicom_studies", ["study_date", "study_time"])
    op.create_index("ix_esb_dicom_studies_patient", "esb_dicom_studies", ["patient_pk"])
    op.create_index("ix_esb_dicom_studies_status", "esb_dicom_studies", ["status", "updated_at"])
    op.create_index("ix_esb_dicom_studies_study_id", "esb_dicom_studies", ["study_id"])

    op.create_table(
        "esb_dicom_series",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("series_uid", sa.String(128), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(400), nullable=False),
        sa.Column("body_part", sa.String(64), nullable=False),
        sa.Column("series_date", sa.String(8), nullable=False),
        sa.Column("pps_start_date", sa.String(8), nullable=False),
        sa.Column("pps_start_time", sa.String(16), nullable=False),
        sa.Column("num_instances", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("series_uid", name="uq_esb_dicom_series_uid"),
    )
    op.create_index("ix_esb_dicom_series_modality", "esb_dicom_series", ["modality", "study_pk"])
    op.create_index("ix_esb_dicom_series_study", "esb_dicom_series", ["study_pk", "series_number"])

    op.create_table(
        "esb_dicom_instances",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("series_pk", sa.Integer(), nullable=False),
        sa.Column("sop_uid", sa.String(128), nullable=False),
        sa.Column("sop_class_uid", sa.String(128), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("transfer_syntax", sa.String(128), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha1", sa.String(40), nullable=True),
        sa.Column("availability", sa.String(16), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("calling_ae", sa.String(16), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("sop_uid", name="uq_esb_dicom_instances_uid"),
    )
    op.create_index("ix_esb_dicom_instances_expires", "esb_dicom_instances", ["expires_at"])
    op.create_index("ix_esb_dicom_instances_key", "esb_dicom_instances", ["storage_key"])
    op.create_index("ix_esb_dicom_instances_series", "esb_dicom_instances", ["series_pk", "instance_number"])


def downgrade() -> None:
    op.drop_table("esb_dicom_instances")
    op.drop_table("esb_dicom_series")
    op.drop_table("esb_dicom_studies")
    op.drop_table("esb_dicom_patients")
