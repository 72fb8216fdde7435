"""``esb_xdsi_manifests``: every KOS manifest published, so a changed study's new KOS replaces the last one.

One row per publication (history kept): the study, the KOS SOP Instance UID
(the DocumentEntry uniqueId), the DocumentEntry's entryUUID, the master
patient ID it was registered under, and a digest of the instances it lists,
which tells whether the study changed since (a study sent again unchanged
needs no new manifest). The newest row of a study is its current manifest.

``esb_xdsi_claims``: the study whose manifest a publisher is building and
submitting right now, with the claim's lease. Timer ticks may overlap on one
node and do on several; the claim makes one publisher at a time work on a
study, so one change gives one manifest (see ``profiles.xdsi.claims``).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table

from esb.journal.schema import metadata

manifests = Table(
    "esb_xdsi_manifests",
    metadata,
    Column("kos_uid", String(64), primary_key=True),
    Column("study_uid", String(64), nullable=False),
    Column("entry_uuid", String(64), nullable=False),
    Column("patient_id", String(256), nullable=False),
    Column("digest", String(40), nullable=False),  # SHA-1 of the sorted series/instance UIDs listed
    Column("instances", Integer, nullable=False),
    Column("published_at", DateTime, nullable=False),
    Index("ix_esb_xdsi_manifests_study", "study_uid", "published_at"),
)

claims = Table(
    "esb_xdsi_claims",
    metadata,
    Column("study_uid", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),  # a token per publication attempt
    Column("lease_until", DateTime, nullable=False),
)
