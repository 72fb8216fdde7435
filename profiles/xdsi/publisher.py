"""RAD-68 Provide and Register Imaging Document Set: publish a study's KOS manifest to the XDS repository.

``Publisher.publish(study_uid)`` reads the study from the archive (its index
attributes and every instance), takes the study's EMPI master patient as the
archive resolves it (``profiles.dicom.empi_link``; an unlinked patient means no
publication, logged without patient data, and the study stays ``complete`` for
:meth:`Publisher.publish_complete` to try again), builds the KOS and hands it
to the repository in process (ITI-41; the repository forwards the metadata to
the registry, ITI-42). A registered manifest makes the study ``archived``.

A study published before and changed since (another instance set: the digest
of its series/instance UIDs differs) gets a new KOS that replaces the last one
with an RPLC association, so the registry deprecates the old entry (RAD TF-3
4.68.4.1.2.2: a changed manifest is resubmitted as a replacement). The entry to
replace is found in the registry by uniqueId (ITI-18 GetDocuments) when a
query is at hand, and must still be Approved; otherwise the entryUUID recorded
in ``esb_xdsi_manifests`` is used. An unchanged study is not published again.
Publishers on several nodes (or overlapping timer ticks) take a claim on the
study first (:mod:`profiles.xdsi.claims`), so one change makes one manifest.

The KOS is not stored in the archive. It is an XDS document: the repository
keeps it and ITI-43 returns it. Putting it into the study as one more instance
would make every publication change the study it describes (and call for a
new KOS), and the archive has no way to withdraw a replaced manifest, so
C-FIND would list stale ones beside the current one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from lxml import etree
from pydicom.dataset import Dataset
from sqlalchemy import Connection, Engine, insert, select

from esb.exchange import Attachment
from profiles.dicom import empi_link
from profiles.dicom.api import InstanceRef, Level
from profiles.dicom.lifecycle import StudyInfo
from profiles.dicom.schema import ARCHIVED, COMPLETE
from profiles.empi.schema import persons
from profiles.xds import ebxml
from profiles.xds.ebxml import q
from profiles.xdsi import claims, kos, metadata
from profiles.xdsi.config import XdsiConfig
from profiles.xdsi.schema import manifests

log = logging.getLogger(__name__)

Outcome = Literal["published", "replaced", "unchanged", "unresolved", "empty", "refused", "busy"]


class StudyArchive(Protocol):
    """What the publisher needs of ``profiles.dicom.archive.Archive``: instances, the study, its status."""

    def select(self, level: Level, identifier: Dataset) -> list[InstanceRef]: ...

    def study(self, study_uid: str) -> StudyInfo | None: ...

    def set_status(self, study_uid: str, status: str, *, expected: str | None = None) -> bool: ...

    def studies_with_status(self, status: str, *, limit: int = ...) -> list[str]: ...


class Provider(Protocol):
    """The XDS repository's ITI-41 side (``profiles.xds.repository.Repository``)."""

    def provide(self, request: Any, attachments: Sequence[Attachment] = ()) -> Any: ...


@dataclass(frozen=True)
class Publication:
    """What :meth:`Publisher.publish` did; ``errors`` are (XDS error code, text) of a refusal."""

    study_uid: str
    outcome: Outcome
    kos_uid: str = ""
    entry_uuid: str = ""
    replaced: str = ""
    errors: tuple[tuple[str, str], ...] = ()


def digest(instances: Sequence[InstanceRef]) -> str:
    lines = sorted(f"{i.series_uid}/{i.sop_instance_uid}" for i in instances)
    return hashlib.sha1("\n".join(lines).encode("ascii", "replace")).hexdigest()


class Publisher:
    """The Imaging Document Source's publishing side, on the engine's database."""

    def __init__(
        self,
        engine: Engine,
        archive: StudyArchive,
        repository: Provider,
        config: XdsiConfig,
        *,
        master_oid: str,
        query: Callable[[Any], Any] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.engine = engine
        self.archive = archive
        self.repository = repository
        self.config = config
        self.master_oid = master_oid
        self.query = query
        self.clock = clock

    def publish_complete(self, *, limit: int = 100) -> list[Publication]:
        """Publish every study the archive reports ``complete`` (the timer's work; failures stay for next time)."""
        return [self.publish(uid) for uid in self.archive.studies_with_status(COMPLETE, limit=limit)]

    def publish(self, study_uid: str) -> Publication:
        """Publish (or replace) the KOS of one study; never raises for what XDS refuses.

        A complete study whose manifest is registered (now or before, unchanged)
        becomes ``archived``. A study another publisher is working on is left
        to it (``busy``; see :mod:`profiles.xdsi.claims`).
        """
        owner = claims.claim(self.engine, study_uid, self.clock())
        if owner is None:
            log.info("XDS-I: study %s is being published by another worker", study_uid)
            return Publication(study_uid, "busy")
        try:
            return self._publish(study_uid)
        finally:
            claims.release(self.engine, study_uid, owner)

    def _publish(self, study_uid: str) -> Publication:
        info = self.archive.study(study_uid)
        ident = Dataset()
        ident.QueryRetrieveLevel = "STUDY"
        ident.StudyInstanceUID = study_uid
        instances = [i for i in self.archive.select("STUDY", ident) if i.study_uid == study_uid] if info else []
        if info is None or not instances:
            return Publication(study_uid, "empty")
        listed = digest(instances)
        with self.engine.connect() as conn:
            latest = self.latest(conn, study_uid)
            if latest is not None and latest.digest == listed:
                self.archive.set_status(study_uid, ARCHIVED, expected=COMPLETE)
                return Publication(study_uid, "unchanged", latest.kos_uid, latest.entry_uuid)
            person = self._master(conn, info)
            source_patient_id = self._source_patient_id(conn, info) if person else ""
        if person is None:
            log.warning("XDS-I: study %s not published: its patient has no EMPI master ID", study_uid)
            return Publication(study_uid, "unresolved")
        patient_id = f"{person}^^^&{self.master_oid}&ISO"
        replaces = self._previous_entry(latest) if latest is not None else ""
        now = self.clock()
        study = info.attributes
        study.StudyInstanceUID = study_uid
        manifest = kos.build(study, instances, self.config, now=now)
        submission = metadata.provide_request(
            manifest,
            kos.encode(manifest),
            patient_id=patient_id,
            source_patient_id=source_patient_id or patient_id,
            modalities=info.modalities,
            config=self.config,
            replaces=replaces or None,
            now=now,
        )
        answer = self.repository.provide(submission.request, [submission.attachment])
        if answer.get("status") != ebxml.SUCCESS:
            items = answer.iter(q("rs", "RegistryError"))
            errors = tuple((e.get("errorCode", ""), e.get("codeContext", "")) for e in items)
            log.warning("XDS-I: manifest of study %s refused: %s", study_uid, ", ".join(c for c, _ in errors))
            return Publication(study_uid, "refused", submission.unique_id, errors=errors)
        with self.engine.begin() as conn:
            conn.execute(
                insert(manifests).values(
                    kos_uid=submission.unique_id,
                    study_uid=study_uid,
                    entry_uuid=submission.entry_uuid,
                    patient_id=patient_id,
                    digest=listed,
                    instances=len(instances),
                    published_at=now.astimezone(dt.UTC).replace(tzinfo=None),
                )
            )
        self.archive.set_status(study_uid, ARCHIVED, expected=COMPLETE)
        outcome: Outcome = "replaced" if replaces else "published"
        log.info("XDS-I: manifest of study %s %s (%d instances)", study_uid, outcome, len(instances))
        return Publication(study_uid, outcome, submission.unique_id, submission.entry_uuid, replaces)

    # -- lookups ------------------------------------------------------------------------------

    @staticmethod
    def latest(conn: Connection, study_uid: str) -> Any:
        """The study's current manifest row, or None."""
        query = (
            select(manifests)
            .where(manifests.c.study_uid == study_uid)
            .order_by(manifests.c.published_at.desc(), manifests.c.kos_uid.desc())
            .limit(1)
        )
        return conn.execute(query).first()

    def _master(self, conn: Connection, info: StudyInfo) -> str | None:
        """The EMPI person of the study's patient (images sent with a master ID name it directly)."""
        if info.master_id:
            return info.master_id
        for issuer in (info.issuer_uid, info.issuer):
            if info.patient_id and issuer and empi_link.is_master_issuer(conn, issuer, self.master_oid):
                person = empi_link.survivor(conn, info.patient_id)
                return person if _is_person(conn, person) else None
        return None

    @staticmethod
    def _source_patient_id(conn: Connection, info: StudyInfo) -> str:
        """sourcePatientId: the local ID with its authority's OID (``id^^^&oid&ISO``), "" when it has none."""
        oids = [info.issuer_uid] if _looks_like_oid(info.issuer_uid) else []
        oids += [universal for _key, _ns, universal, _kind in empi_link.domain_rows(conn, info.issuer) if universal]
        if _looks_like_oid(info.issuer):
            oids.append(info.issuer)
        return f"{info.patient_id}^^^&{oids[0]}&ISO" if oids and info.patient_id else ""

    def _previous_entry(self, latest: Any) -> str:
        """The entryUUID to replace: the Approved entry with the last KOS's uniqueId (registry first)."""
        if self.query is None:
            return str(latest.entry_uuid)
        try:
            answer = self.query(get_documents(str(latest.kos_uid)))
        except Exception:
            log.exception("XDS-I: ITI-18 lookup of the previous manifest failed; using the recorded entry")
            return str(latest.entry_uuid)
        for entry in answer.iter(q("rim", "ExtrinsicObject")):
            if entry.get("status") == ebxml.APPROVED:
                return str(entry.get("id"))
        log.warning("XDS-I: the previous manifest %s is no longer Approved; submitting without RPLC", latest.kos_uid)
        return ""


def get_documents(unique_id: str) -> Any:
    """ITI-18 GetDocuments by uniqueId, LeafClass (the status is on each ExtrinsicObject)."""
    root = etree.Element(q("query", "AdhocQueryRequest"), nsmap={"query": ebxml.QUERY, "rim": ebxml.RIM})
    etree.SubElement(root, q("query", "ResponseOption"), returnType="LeafClass", returnComposedObjects="true")
    adhoc = etree.SubElement(root, q("rim", "AdhocQuery"), id=ebxml.STORED_QUERIES["GetDocuments"])
    slot = etree.SubElement(adhoc, q("rim", "Slot"), name="$XDSDocumentEntryUniqueId")
    etree.SubElement(etree.SubElement(slot, q("rim", "ValueList")), q("rim", "Value")).text = f"('{unique_id}')"
    return root


def _is_person(conn: Connection, person_id: str) -> bool:
    row = conn.execute(select(persons.c.status).where(persons.c.id == person_id)).first()
    return row is not None and row.status == "active"


def _looks_like_oid(text: str) -> bool:
    parts = text.split(".")
    return len(parts) > 1 and all(p.isdigit() for p in parts)
