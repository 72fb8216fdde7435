"""Housekeeping after crashes: blobs no row names, and rows left ``pending``.

Neither is needed for correctness of answers (an orphan blob is never served;
a pending row is served like an available one), only to reclaim space and to
settle what the registry decided while the repository was not listening. Run
them from a timer route or ``esb`` maintenance, with ages well above the
longest submission (a blob is written before its row, a row is pending while
the registry works).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select, update

from esb.journal.store import utcnow
from esb.storage import BlobStore
from profiles.xds.repository.provide import KEY_PREFIX
from profiles.xds.repository.records import BATCH
from profiles.xds.repository.schema import AVAILABLE, PENDING, documents

log = logging.getLogger(__name__)

#: ITI-18 in a callable: of these uniqueIds, the ones the registry has a DocumentEntry for (in this repository)
IsRegistered = Callable[[list[str]], Iterable[str]]


def _batches(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def sweep_orphans(engine: Engine, store: BlobStore, older_than: dt.timedelta = dt.timedelta(days=1)) -> int:
    """Delete repository blobs older than ``older_than`` that no row names; how many were deleted.

    They are what a crash between storing and claiming leaves behind. Only keys
    the repository writes (``xds-...``) are considered, so a store shared with
    other users is safe.
    """
    limit = utcnow() - older_than
    candidates = [b.key for b in store.scan() if b.key.startswith(KEY_PREFIX) and b.modified < limit]
    removed = 0
    for batch in _batches(candidates):
        with engine.connect() as conn:
            named = set(conn.scalars(select(documents.c.storage_key).where(documents.c.storage_key.in_(batch))))
        for key in batch:
            if key not in named and store.delete(key):
                removed += 1
    if removed:
        log.info("XDS repository: removed %d orphaned blob(s)", removed)
    return removed


@dataclass(frozen=True)
class Settled:
    confirmed: int
    removed: int


def settle(
    engine: Engine,
    store: BlobStore,
    repository_unique_id: str,
    is_registered: IsRegistered,
    older_than: dt.timedelta = dt.timedelta(hours=1),
) -> Settled:
    """Decide rows left ``pending`` (older than ``older_than``) by asking the registry.

    A row the registry knows becomes ``available``; one it does not is deleted
    with its blob. If the registry cannot be asked, nothing changes.
    """
    limit = utcnow() - older_than
    with engine.connect() as conn:
        pending = list(
            conn.execute(
                select(documents.c.unique_id, documents.c.storage_key).where(
                    documents.c.repository_unique_id == repository_unique_id,
                    documents.c.status == PENDING,
                    documents.c.stored_at < limit,
                )
            )
        )
    confirmed = removed = 0
    keys = {row.unique_id: row.storage_key for row in pending}
    for batch in _batches(sorted(keys)):
        known = set(is_registered(batch))
        gone: list[str] = []
        with engine.begin() as conn:
            for unique_id in batch:
                where = (
                    documents.c.repository_unique_id == repository_unique_id,
                    documents.c.unique_id == unique_id,
                    documents.c.storage_key == keys[unique_id],
                    documents.c.status == PENDING,
                )
                if unique_id in known:
                    result = conn.execute(
                        update(documents).where(*where).values(status=AVAILABLE, registered_at=utcnow())
                    )
                    confirmed += result.rowcount
                elif conn.execute(delete(documents).where(*where)).rowcount:
                    gone.append(keys[unique_id])
        for key in gone:
            store.delete(key)
            removed += 1
    if confirmed or removed:
        log.info("XDS repository: settled pending documents: %d confirmed, %d removed", confirmed, removed)
    return Settled(confirmed, removed)
