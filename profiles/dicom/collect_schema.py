"""Collection job tables: one row per job, one per study it found, so a stopped job resumes where it was.

A job is a remote AE, a StudyDate window and a retrieve method. ``items`` holds
each study the C-FIND returned and what became of it: ``pending`` until its
retrieve finished, then ``done``, ``skipped`` (the archive already had every
instance) or ``failed`` (retried when the job is resumed). Counters on the job
row are the sums over its items, updated in the same transaction as each item,
so a job killed at any point reports what it really did.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, ForeignKey, Index, Integer, String, Table, Text

from esb.journal.schema import metadata

#: job statuses: running (or its process died: no progress for a while), paused (time budget spent),
#: interrupted (the run stopped on an error or Ctrl-C), done, failed (some studies failed; retried next run)
RUNNING, PAUSED, INTERRUPTED, DONE, FAILED = "running", "paused", "interrupted", "done", "failed"
RESUMABLE = (RUNNING, PAUSED, INTERRUPTED, FAILED)
#: item statuses
PENDING, RETRIEVED, SKIPPED = "pending", "done", "skipped"

jobs = Table(
    "esb_dicom_collect_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("source", String(64), nullable=False),  # the remote AE title (a key of remote_aes)
    Column("method", String(8), nullable=False),  # move | get
    Column("since", String(8), nullable=False),  # StudyDate window, YYYYMMDD, inclusive
    Column("until", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("runs", Integer, nullable=False),
    Column("studies_found", Integer, nullable=False),
    Column("studies_retrieved", Integer, nullable=False),
    Column("studies_skipped", Integer, nullable=False),
    Column("studies_failed", Integer, nullable=False),
    Column("instances", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False),
    Index("ix_esb_dicom_collect_jobs_window", "source", "since", "until", "method", "status"),
)

items = Table(
    "esb_dicom_collect_items",
    metadata,
    Column("job_id", String(32), ForeignKey("esb_dicom_collect_jobs.id"), primary_key=True),
    Column("study_uid", String(64), primary_key=True),
    Column("study_date", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("remote_instances", Integer, nullable=False),  # NumberOfStudyRelatedInstances; 0 if not given
    Column("instances", Integer, nullable=False),  # fetched by this job
    Column("bytes", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text),  # statuses and counts only, never patient data
    Column("updated_at", DateTime, nullable=False),
    Index("ix_esb_dicom_collect_items_status", "job_id", "status"),
)
