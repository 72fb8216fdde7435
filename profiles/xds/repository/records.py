"""Rows of ``esb_xds_documents``: claim before registering, confirm or release after.

Order of a Provide and Register (why it is safe against crashes and races):

1. blobs are written under fresh keys (a crash here leaves blobs that no row
   names: :func:`profiles.xds.repository.sweep.sweep_orphans` removes them);
2. :func:`claim` inserts ``pending`` rows in one transaction, or finds the
   uniqueId already stored with the same hash (an identical resubmission,
   which reuses the stored blob) or a different one (XDSNonIdenticalHash);
3. the metadata goes to the registry (ITI-42);
4. on Success :func:`confirm` marks the rows ``available``; on anything else
   :func:`release` deletes the rows this submission inserted (only while still
   ``pending`` and still naming its blob) and says which blobs may go.

A crash between 2 and 4 leaves ``pending`` rows with their blobs: nothing the
registry may have accepted is lost, and :func:`~profiles.xds.repository.sweep.settle`
later asks the registry which of them it knows. Every statement matches the
blob key as well as the uniqueId, so a submission never deletes or confirms a
row that another one owns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from esb.errors import XdsError
from esb.journal.store import utcnow
from profiles.xds.repository.provide import Incoming, combine
from profiles.xds.repository.schema import AVAILABLE, PENDING, documents

log = logging.getLogger(__name__)

#: uniqueIds per IN (...) list: far below every dialect's bound-parameter limit
BATCH = 500
#: a concurrent submission inserting the same uniqueId makes ours retry this often
ATTEMPTS = 3

T = TypeVar("T")


def find(conn: Connection, repository_unique_id: str, unique_ids: Iterable[str]) -> dict[str, Any]:
    """The rows of these uniqueIds in this repository, by uniqueId."""
    wanted = sorted(set(unique_ids))
    rows: dict[str, Any] = {}
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        query = select(documents).where(
            documents.c.repository_unique_id == repository_unique_id, documents.c.unique_id.in_(batch)
        )
        rows.update({row.unique_id: row for row in conn.execute(query)})
    return rows


def _retrying(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in a transaction, again if a concurrent insert of the same key beat it."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except IntegrityError:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def claim(engine: Engine, repository_unique_id: str, incoming: Sequence[Incoming]) -> set[str]:
    """Insert ``pending`` rows for uniqueIds not stored yet; the uniqueIds whose row this call inserted.

    A uniqueId already stored with the same hash is an identical resubmission
    (accepted, the stored blob serves it); with another hash the submission is
    refused with XDSNonIdenticalHash (ITI TF-3 4.2.4.1), and no row is written.
    """

    def work(conn: Connection) -> set[str]:
        rows = find(conn, repository_unique_id, (d.unique_id for d in incoming))
        errors: list[XdsError] = []
        fresh: list[Incoming] = []
        for document in incoming:
            row = rows.get(document.unique_id)
            if row is None:
                fresh.append(document)
            elif row.hash != document.stored.sha1 or row.size != document.stored.size:
                errors.append(
                    XdsError(
                        f"uniqueId {document.unique_id} is already stored in this repository with another hash",
                        code="XDSNonIdenticalHash",
                        location=document.unique_id,
                    )
                )
        if errors:
            raise combine(errors)
        now = utcnow()
        if fresh:
            conn.execute(
                insert(documents),
                [
                    {
                        "repository_unique_id": repository_unique_id,
                        "unique_id": d.unique_id,
                        "storage_key": d.stored.key,
                        "mime_type": d.mime_type,
                        "size": d.stored.size,
                        "hash": d.stored.sha1,
                        "status": PENDING,
                        "stored_at": now,
                        "registered_at": None,
                    }
                    for d in fresh
                ],
            )
        return {d.unique_id for d in fresh}

    return _retrying(engine, work)


def confirm(engine: Engine, repository_unique_id: str, incoming: Sequence[Incoming]) -> list[str]:
    """The registry accepted: mark the rows ``available``; the blob keys no row needs (resubmitted copies)."""

    def work(conn: Connection) -> list[str]:
        rows = find(conn, repository_unique_id, (d.unique_id for d in incoming))
        now = utcnow()
        spare: list[str] = []
        for document in incoming:
            key = document.stored.key
            row = rows.get(document.unique_id)
            if row is None:  # our pending row was swept meanwhile, or we resubmitted a copy whose owner gave up
                conn.execute(
                    insert(documents).values(
                        repository_unique_id=repository_unique_id,
                        unique_id=document.unique_id,
                        storage_key=key,
                        mime_type=document.mime_type,
                        size=document.stored.size,
                        hash=document.stored.sha1,
                        status=AVAILABLE,
                        stored_at=now,
                        registered_at=now,
                    )
                )
                continue
            if row.storage_key != key:
                spare.append(key)
                if row.hash != document.stored.sha1:
                    log.error(
                        "XDS repository: uniqueId %s was registered with content other than stored", row.unique_id
                    )
            if row.status == PENDING:
                conn.execute(
                    update(documents)
                    .where(
                        documents.c.repository_unique_id == repository_unique_id,
                        documents.c.unique_id == row.unique_id,
                        documents.c.storage_key == row.storage_key,
                    )
                    .values(status=AVAILABLE, registered_at=now)
                )
        return spare

    return _retrying(engine, work)


def release(engine: Engine, repository_unique_id: str, incoming: Sequence[Incoming], claimed: set[str]) -> list[str]:
    """The registry refused: delete the rows this submission inserted; the blob keys that may now be deleted.

    A row another submission confirmed meanwhile (an identical resubmission
    that the registry accepted) is no longer ``pending`` and stays, blob and all.
    """
    keys: list[str] = []
    with engine.begin() as conn:
        for document in incoming:
            key = document.stored.key
            if document.unique_id not in claimed:
                keys.append(key)
                continue
            result = conn.execute(
                delete(documents).where(
                    documents.c.repository_unique_id == repository_unique_id,
                    documents.c.unique_id == document.unique_id,
                    documents.c.storage_key == key,
                    documents.c.status == PENDING,
                )
            )
            if result.rowcount:
                keys.append(key)
    return keys
