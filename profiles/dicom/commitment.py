"""Storage Commitment Push Model SCP (PS3.4 Annex J; IHE RAD-10): the archive takes responsibility, or says why not.

A modality that sent images asks, with an N-ACTION (Action Type 1) naming a
Transaction UID and the instances, whether the archive now keeps them. The
request is recorded (:mod:`profiles.dicom.commitment_schema`) and answered
at once; the verdict goes back later in an N-EVENT-REPORT on an association
the archive opens to the requester (the ``dicom-commitment`` timer route, so
a report survives a restart and any node may send it, with retries):

- committed: the instance is in the index with its bytes in the store, of the
  SOP class the request names (C-STORE success already meant the file was
  fsynced and indexed, so nothing more is waited for);
- failed, reason 0x0112 (no such object instance): not here, or only known
  (an on-demand instance not fetched) or cached with an expiry;
- failed, reason 0x0119 (class/instance conflict): here, of another SOP class.

Event Type 1 when every instance is committed, 2 when failures exist
(PS3.4 J.3.3). The requester must be one of ``remote_aes`` in
config/dicom.yaml (by name or AE title): that is where the report goes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from sqlalchemy import Engine, and_, insert, or_, select, update

from esb.errors import DicomError
from esb.journal.store import naive_utc
from profiles.dicom.commitment_schema import FAILED, PENDING, SENT, commitments
from profiles.dicom.schema import instances

log = logging.getLogger("esb.dicom.commitment")

PUSH_MODEL = "1.2.840.10008.1.20.1"
PUSH_MODEL_INSTANCE = "1.2.840.10008.1.20.1.1"
REQUEST_ACTION = 1
ALL_COMMITTED, FAILURES_EXIST = 1, 2
#: N-ACTION statuses (PS3.7 C.4)
NO_SUCH_ACTION, NO_SUCH_INSTANCE, MISSING_ATTRIBUTE, INVALID_VALUE, PROCESSING_FAILURE = (
    0x0123, 0x0112, 0x0120, 0x0106, 0x0110,
)  # fmt: skip
#: Failure Reason (0008,1197) of a Failed SOP Sequence item (PS3.3 C.14.1.1)
NOT_HERE, CLASS_CONFLICT = 0x0112, 0x0119
#: instances in one request at most (a study of a few thousand images fits many times)
MAX_REFERENCES = 50_000
#: report attempts before a request is given up (about a day with the backoff below)
MAX_ATTEMPTS = 30
FIRST_DELAY, MAX_DELAY = 5.0, 3600.0
LOOKUP_CHUNK = 500
#: reports claimed per tick, and for how long: longer than sending them all takes at the
#: report timeout (``commitment_report.TIMEOUT``), so no other node takes one still being sent
CLAIM_LIMIT, CLAIM_LEASE = 10, 300.0


@dataclass(frozen=True)
class Request:
    transaction_uid: str
    references: tuple[tuple[str, str], ...]  # (SOP Class UID, SOP Instance UID)


@dataclass(frozen=True)
class Due:
    """A recorded request whose report is to be sent now (claimed with a lease)."""

    id: str
    transaction_uid: str
    remote: str
    references: tuple[tuple[str, str], ...]
    attempts: int


def parse_request(action_type: int | None, information: Dataset | None) -> Request:
    """The N-ACTION's Action Information as a request; :class:`DicomError` with the status to answer otherwise."""
    if action_type != REQUEST_ACTION:
        raise DicomError(f"action type {action_type} is not Request Storage Commitment (1)", status=NO_SUCH_ACTION)
    if information is None:
        raise DicomError("the N-ACTION has no Action Information", status=MISSING_ATTRIBUTE)
    transaction_uid = str(information.get("TransactionUID", "") or "").strip()
    if not transaction_uid:
        raise DicomError("Transaction UID (0008,1195) is missing", status=MISSING_ATTRIBUTE)
    items = information.get("ReferencedSOPSequence")
    if not items:
        raise DicomError("Referenced SOP Sequence (0008,1199) is missing or empty", status=MISSING_ATTRIBUTE)
    if len(items) > MAX_REFERENCES:
        raise DicomError(f"more than {MAX_REFERENCES} instances in one request", status=PROCESSING_FAILURE)
    references: list[tuple[str, str]] = []
    for item in items:
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "").strip()
        sop_instance = str(item.get("ReferencedSOPInstanceUID", "") or "").strip()
        if not sop_class or not sop_instance:
            raise DicomError("a Referenced SOP Sequence item lacks its SOP Class or Instance UID", status=INVALID_VALUE)
        references.append((sop_class, sop_instance))
    return Request(transaction_uid, tuple(references))


def verdict(
    engine: Engine, references: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str, int]]]:
    """(committed, failed with reason) for the referenced instances, from the index (see the module doc)."""
    held: dict[str, tuple[str, bool]] = {}
    uids = list(dict.fromkeys(uid for _, uid in references))
    columns = (instances.c.sop_uid, instances.c.sop_class_uid, instances.c.storage_key, instances.c.expires_at)
    with engine.connect() as conn:
        for start in range(0, len(uids), LOOKUP_CHUNK):
            chunk = uids[start : start + LOOKUP_CHUNK]
            for row in conn.execute(select(*columns).where(instances.c.sop_uid.in_(chunk))):
                kept = row.storage_key is not None and row.expires_at is None
                held[row.sop_uid] = (row.sop_class_uid, kept)
    committed: list[tuple[str, str]] = []
    failed: list[tuple[str, str, int]] = []
    for sop_class, sop_instance in references:
        found = held.get(sop_instance)
        if found is None or not found[1]:
            failed.append((sop_class, sop_instance, NOT_HERE))
        elif found[0] != sop_class:
            failed.append((sop_class, sop_instance, CLASS_CONFLICT))
        else:
            committed.append((sop_class, sop_instance))
    return committed, failed


def event_report(
    transaction_uid: str, committed: Iterable[tuple[str, str]], failed: Iterable[tuple[str, str, int]], retrieve_ae: str
) -> tuple[int, Dataset]:
    """The N-EVENT-REPORT's Event Type ID and Event Information (PS3.4 J.3.3, Table J.3-2)."""
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    if retrieve_ae:
        ds.RetrieveAETitle = retrieve_ae
    done, missing = list(committed), list(failed)
    if done:
        ds.ReferencedSOPSequence = [_item(c, i) for c, i in done]
    if missing:
        ds.FailedSOPSequence = [_item(c, i, reason) for c, i, reason in missing]
    return (FAILURES_EXIST if missing else ALL_COMMITTED), ds


def _item(sop_class: str, sop_instance: str, reason: int | None = None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    if reason is not None:
        item.FailureReason = reason
    return item


class Commitments:
    """The recorded requests on the engine's database: record, claim what is due, settle."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, request: Request, calling_ae: str, remote: str, now: dt.datetime) -> str:
        """Keep the request (committed before the N-ACTION is answered); its id."""
        row_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                insert(commitments).values(
                    id=row_id, transaction_uid=request.transaction_uid, calling_ae=calling_ae, remote=remote,
                    refs=json.dumps(request.references), status=PENDING, attempts=0, next_attempt_at=naive_utc(now),
                    requested_at=naive_utc(now),
                )
            )  # fmt: skip
        return row_id

    def claim(self, now: dt.datetime, *, limit: int = CLAIM_LIMIT, lease: float = CLAIM_LEASE) -> list[Due]:
        """Requests whose report is due and that no other node holds, taken for ``lease`` seconds."""
        at = naive_utc(now)
        free = or_(commitments.c.lease_until.is_(None), commitments.c.lease_until < at)
        due = and_(commitments.c.status == PENDING, commitments.c.next_attempt_at <= at, free)
        with self.engine.connect() as conn:
            rows = conn.execute(select(commitments).where(due).order_by(commitments.c.next_attempt_at).limit(limit))
            candidates = rows.all()
        taken: list[Due] = []
        with self.engine.begin() as conn:
            for row in candidates:
                won = conn.execute(
                    update(commitments)
                    .where(commitments.c.id == row.id, due)
                    .values(lease_until=at + dt.timedelta(seconds=lease))
                )
                if won.rowcount == 1:
                    refs = tuple((str(c), str(i)) for c, i in json.loads(row.refs))
                    taken.append(Due(row.id, row.transaction_uid, row.remote, refs, row.attempts))
        return taken

    def sent(self, due: Due, committed: int, failed: int, now: dt.datetime) -> None:
        self._settle(due, status=SENT, sent_at=naive_utc(now), committed=committed, failed=failed, error=None)

    def retry(self, due: Due, error: str, now: dt.datetime) -> str:
        """A failed attempt: try again after a backoff, or give up after :data:`MAX_ATTEMPTS`; the new status."""
        attempts = due.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            log.error("storage commitment %s: report not taken after %d attempts; given up", due.id, attempts)
            self._settle(due, status=FAILED, attempts=attempts, error=error)
            return FAILED
        delay = min(FIRST_DELAY * 2 ** (attempts - 1), MAX_DELAY)
        after = naive_utc(now) + dt.timedelta(seconds=delay)
        self._settle(due, status=PENDING, attempts=attempts, next_attempt_at=after, error=error)
        return PENDING

    def _settle(self, due: Due, **values: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(commitments).where(commitments.c.id == due.id).values(lease_until=None, **values))

    def rows(self, *, status: str | None = None, limit: int = 100) -> list[dict[str, object]]:
        """The newest requests (for ``esb dicom commitments``), without their references."""
        query = select(*[c for c in commitments.c if c.name != "refs"]).order_by(commitments.c.requested_at.desc())
        if status:
            query = query.where(commitments.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.limit(limit))]
