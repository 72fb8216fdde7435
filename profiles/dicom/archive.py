"""The archive: the index in the engine's database and the instances' bytes in a blob store (B5.3).

:class:`Archive` implements :class:`profiles.dicom.api.ArchiveApi` for the
DIMSE and DICOMweb adapters, the XDS-I publisher and the collection jobs.

Storing keeps the bytes as received: the header is read (never the pixel
data), the spooled file is adopted by the store (a rename on one file system),
then the rows are written in one transaction. If that transaction fails the
file goes back where it was, so the caller can retry or answer with the
failure; a replaced copy's blob is deleted only after the commit.

On-demand instances (known from a KOS or a remote query, not kept) have no
``storage_key``; :meth:`Archive.open` hands them to the ``fetcher`` hook (the
collection side: WADO or C-MOVE from the source), adopts the fetched file and
keeps it for ``cache_expiry``; :meth:`Archive.expire_cache` lets copies go.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pydicom.dataset import Dataset
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from esb.errors import BlobNotFoundError, DicomError, StorageError
from esb.journal.store import utcnow
from esb.security.users import Scope
from esb.storage import BlobStore
from profiles.dicom import lifecycle
from profiles.dicom.api import ArchiveApi, InstanceRef, Level, Model, Stored
from profiles.dicom.commitment import Commitments
from profiles.dicom.commitment import Request as CommitmentRequest
from profiles.dicom.config import DicomConfig
from profiles.dicom.empi_link import master_patient
from profiles.dicom.find import QUERY_FAILED, Finder, check_level, in_scope
from profiles.dicom.header import OUT_OF_RESOURCES, identify, read_header
from profiles.dicom.indexer import Blob, Indexed, Restart, index_instance
from profiles.dicom.lifecycle import StudyInfo
from profiles.dicom.matching import condition, query_values
from profiles.dicom.schema import NEARLINE, ONLINE, instances, patients, series, studies

log = logging.getLogger("esb.dicom.archive")

#: C-MOVE / C-GET / WADO: the instance cannot be sent (not kept and no way to fetch it, or its bytes are gone)
UNAVAILABLE = 0xA702
#: a store that loses a unique-key race runs its transaction again, at most this many times
ATTEMPTS = 3

Fetcher = Callable[[InstanceRef], Path]


def new_key() -> str:
    """A fresh blob key: never derived from a UID, so a replacement or a failed store only touches its own blob."""
    return f"{uuid.uuid4().hex}.dcm"


class Archive:
    def __init__(
        self,
        engine: Engine,
        store: BlobStore,
        config: DicomConfig,
        master_oid: str,
        *,
        ae_title: str = "ESB",
        fetcher: Fetcher | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.blobs = store
        self.config = config
        self.master_oid = master_oid
        self.ae_title = ae_title
        #: on-demand retrieval: returns a Part 10 file of the instance (the archive adopts it)
        self.fetcher = fetcher
        self.clock = clock
        self.finder = Finder(master_oid, ae_title)

    # -- storing ---------------------------------------------------------------------

    def store(self, path: Path, *, calling_ae: str = "", source: str = "") -> Stored:
        header = read_header(path)
        key = new_key()
        try:
            blob = self.blobs.adopt(key, path)
        except StorageError as exc:
            raise DicomError(f"cannot keep the instance: {exc}", status=OUT_OF_RESOURCES) from exc
        try:
            indexed = self._index(header, Blob(key, blob.size, blob.sha1), calling_ae=calling_ae, source=source)
        except BaseException:
            self._give_back(key, Path(path))
            raise
        self._drop(indexed.old_key)
        log.debug("stored instance from %s (new study: %s)", calling_ae or source or "-", indexed.stored.new_study)
        return indexed.stored

    def register(self, ds: Dataset, *, source: str, transfer_syntax: str = "") -> Stored:
        """Index an instance known but not kept (on-demand: listed by a KOS or a remote C-FIND).

        ``ds`` has the instance's patient, study, series and instance
        attributes (at least the four identifying UIDs); ``source`` is where
        the fetcher gets it (remote AE name or WADO URL). An instance already
        kept is left as it is.
        """
        header = identify(ds, transfer_syntax=transfer_syntax)
        return self._index(header, Blob(None), source=source, keep_stored=True).stored

    def _index(self, header: Any, blob: Blob, **options: Any) -> Indexed:
        quick, attempt = True, 0
        while True:
            try:
                with self._writing() as conn:
                    return index_instance(conn, header, blob, now=self.clock(), quick=quick, **options)
            except Restart:  # the series is not where the header puts it: take the rows one by one (once)
                quick = False
            except IntegrityError as exc:  # another store created the same patient/study/series row first
                attempt += 1
                if attempt == ATTEMPTS:
                    raise DicomError("the archive index is busy, try again", status=OUT_OF_RESOURCES) from exc
            except DBAPIError as exc:
                raise DicomError("the archive index is unavailable", status=OUT_OF_RESOURCES) from exc

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock first, as PostgreSQL's row locks would."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def _give_back(self, key: str, path: Path) -> None:
        """Undo an adopt: the file returns to ``path`` (renamed back, or copied back across file systems)."""
        local = self.blobs.local_path(key)
        if local is not None:
            try:
                os.replace(local, path)
                return
            except OSError:  # adopted by copying, from another file system: copy it back
                with contextlib.suppress(OSError):
                    shutil.copyfile(local, path)
        self._drop(key)

    def _drop(self, key: str | None) -> None:
        if key is None:
            return
        try:
            self.blobs.delete(key)
        except (OSError, StorageError) as exc:  # an orphan blob: a store sweep finds it
            log.warning("could not delete replaced blob %s: %s", key, exc)

    # -- querying --------------------------------------------------------------------

    def find(
        self,
        level: Level,
        identifier: Dataset,
        *,
        model: Model = "study",
        limit: int | None = None,
        offset: int = 0,
        scope: Sequence[Scope] | None = None,
    ) -> Iterator[Dataset]:
        """C-FIND / QIDO-RS (``limit``/``offset``: QIDO-RS paging); the query runs now, responses are built lazily.

        ``scope``: only studies a scoped grant may see (:func:`profiles.dicom.find.in_scope`); None: all.
        """
        checked = check_level(level, model)
        try:
            with self.engine.connect() as conn:
                rows = self.finder.query(conn, checked, identifier, limit=limit, offset=offset, scope=scope)
        except DBAPIError as exc:
            raise DicomError("the archive index is unavailable", status=OUT_OF_RESOURCES) from exc
        return self.finder.responses(rows, checked, identifier, model)

    def select(self, level: Level, identifier: Dataset, *, scope: Sequence[Scope] | None = None) -> list[InstanceRef]:
        """The instances named by the unique keys (single values or UID lists) at ``level`` and above
        (of the studies ``scope`` lets the caller see, when given)."""
        checked = check_level(level, "patient")
        unique = {"PATIENT": "PatientID", "STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID"}
        required = unique.get(checked, "SOPInstanceUID")
        if not query_values(identifier.get(required)):
            raise DicomError(f"a {checked} level retrieve needs {required}", status=QUERY_FAILED)
        source: Any = instances.join(series, series.c.pk == instances.c.series_pk).join(
            studies, studies.c.pk == series.c.study_pk
        )
        try:
            with self.engine.connect() as conn:
                clauses = []
                if checked == "PATIENT":
                    source = source.join(patients, patients.c.pk == studies.c.patient_pk)
                    clauses = self.finder.patient_conditions(conn, identifier, conn.dialect.name)
                for keyword, column in (
                    ("StudyInstanceUID", studies.c.study_uid),
                    ("SeriesInstanceUID", series.c.series_uid),
                    ("SOPInstanceUID", instances.c.sop_uid),
                ):
                    clause = condition(column, "uid", query_values(identifier.get(keyword)), conn.dialect.name)
                    if clause is not None:
                        clauses.append(clause)
                if scope is not None:
                    clauses.append(in_scope(scope))
                query = (
                    select(instances, series.c.series_uid, studies.c.study_uid)
                    .select_from(source)
                    .where(*clauses)
                    .order_by(
                        studies.c.pk, series.c.series_number, series.c.pk, instances.c.instance_number, instances.c.pk
                    )
                )
                return [_ref(row) for row in conn.execute(query)]
        except DBAPIError as exc:
            raise DicomError("the archive index is unavailable", status=OUT_OF_RESOURCES) from exc

    def instance(self, sop_instance_uid: str) -> InstanceRef | None:
        with self.engine.connect() as conn:
            return self._instance(conn, sop_instance_uid)

    def _instance(self, conn: Connection, sop_instance_uid: str) -> InstanceRef | None:
        row = conn.execute(
            select(instances, series.c.series_uid, studies.c.study_uid)
            .select_from(instances.join(series, series.c.pk == instances.c.series_pk))
            .join(studies, studies.c.pk == series.c.study_pk)
            .where(instances.c.sop_uid == sop_instance_uid)
        ).first()
        return _ref(row) if row is not None else None

    # -- storage commitment ----------------------------------------------------------

    def record_commitment(self, request: CommitmentRequest, *, calling_ae: str, remote: str) -> str:
        return Commitments(self.engine).record(request, calling_ae, remote, self.clock())

    # -- retrieving ------------------------------------------------------------------

    def open(self, instance: InstanceRef) -> BinaryIO:
        key = instance.storage_key
        for _ in range(2):  # a stale reference (copy replaced or expired meanwhile) is looked up once more
            if key is not None:
                try:
                    return self.blobs.open(key)
                except BlobNotFoundError:
                    pass
            current = self.instance(instance.sop_instance_uid)
            if current is None:
                raise DicomError("the instance is not in the archive", status=UNAVAILABLE)
            if current.storage_key is None:
                return self.blobs.open(self._fetch(current))
            if current.storage_key == key:
                break
            key = current.storage_key
        raise DicomError("the instance's bytes are missing from the store", status=UNAVAILABLE)

    def _fetch(self, instance: InstanceRef) -> str:
        """An on-demand instance, fetched from its source and kept for ``cache_expiry``; its blob key."""
        if self.fetcher is None:
            raise DicomError("the instance is kept by its source and this archive cannot fetch it", status=UNAVAILABLE)
        path = self.fetcher(instance)
        try:
            header = read_header(path)
            if header.sop_instance_uid != instance.sop_instance_uid:
                raise DicomError("the source sent another instance than the one asked for", status=UNAVAILABLE)
        except DicomError:
            path.unlink(missing_ok=True)
            raise
        key = new_key()
        blob = self.blobs.adopt(key, path)
        now = self.clock()
        values = {
            "storage_key": key,
            "size": blob.size,
            "sha1": blob.sha1,
            "transfer_syntax": header.transfer_syntax,
            "availability": ONLINE,
            "expires_at": now + dt.timedelta(seconds=self.config.cache_expiry),
            "updated_at": now,
        }
        try:
            with self.engine.begin() as conn:
                won = conn.execute(
                    update(instances)
                    .where(instances.c.sop_uid == instance.sop_instance_uid, instances.c.storage_key.is_(None))
                    .values(**values)
                ).rowcount
        except BaseException:
            self._drop(key)
            raise
        if won:
            return key
        self._drop(key)  # fetched twice at once: the other copy is the one kept
        current = self.instance(instance.sop_instance_uid)
        if current is None or current.storage_key is None:
            raise DicomError("the instance went away while it was fetched", status=UNAVAILABLE)
        return current.storage_key

    def expire_cache(self) -> int:
        """Let fetched on-demand copies past ``expires_at`` go (the instance stays known); how many went."""
        now = self.clock()
        with self.engine.connect() as conn:
            due = conn.execute(
                select(instances.c.pk, instances.c.storage_key)
                .where(instances.c.expires_at <= now, instances.c.storage_key.is_not(None))
                .limit(lifecycle.BATCH)
            ).all()
        gone: list[str] = []
        with self.engine.begin() as conn:
            for row in due:
                result = conn.execute(
                    update(instances)
                    .where(instances.c.pk == row.pk, instances.c.storage_key == row.storage_key)
                    .values(storage_key=None, size=0, sha1=None, availability=NEARLINE, expires_at=None, updated_at=now)
                )
                if result.rowcount == 1:
                    gone.append(row.storage_key)
        for key in gone:
            self._drop(key)
        return len(gone)

    # -- studies -----------------------------------------------------------------------

    def complete_studies(self) -> list[str]:
        """Studies with no new instance for ``study_complete_after`` become complete; their UIDs."""
        now = self.clock()
        cutoff = now - dt.timedelta(seconds=self.config.study_complete_after)
        return lifecycle.complete_studies(self.engine, cutoff, now)

    def set_status(self, study_uid: str, status: str, *, expected: str | None = None) -> bool:
        return lifecycle.set_status(self.engine, study_uid, status, expected=expected)

    def studies_with_status(self, status: str, *, limit: int = lifecycle.BATCH) -> list[str]:
        return lifecycle.studies_with_status(self.engine, status, limit=limit)

    def study(self, study_uid: str) -> StudyInfo | None:
        with self.engine.connect() as conn:
            return lifecycle.study_info(conn, study_uid)

    def master_patient(self, patient_id: str, issuer: str) -> str | None:
        """The EMPI master ID of a local patient ID (issuer: namespace or OID), as the EMPI says now."""
        with self.engine.connect() as conn:
            return master_patient(conn, patient_id, issuer)


def _ref(row: Any) -> InstanceRef:
    return InstanceRef(
        study_uid=row.study_uid,
        series_uid=row.series_uid,
        sop_instance_uid=row.sop_uid,
        sop_class_uid=row.sop_class_uid,
        transfer_syntax=row.transfer_syntax,
        size=row.size,
        storage_key=row.storage_key,
    )


if TYPE_CHECKING:

    def _conforms(archive: Archive) -> ArchiveApi:
        """mypy checks here that Archive implements the contract the adapters are written against."""
        return archive
