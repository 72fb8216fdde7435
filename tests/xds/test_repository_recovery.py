"""Crashes and races around ITI-41: what a crash leaves, how sweeps settle it, who owns a resubmitted document."""

from __future__ import annotations

import datetime as dt
import io
import os
import time
from typing import Any

import pytest
import sqlalchemy as sa

from esb.storage import LocalDiskStore
from profiles.xds.config import XdsConfig
from profiles.xds.repository import Repository, Settled, records, settle, sweep_orphans
from profiles.xds.repository.provide import Incoming, plan
from profiles.xds.repository.provide import store as store_documents
from profiles.xds.repository.schema import documents
from tests.xds import samples
from tests.xds.repository_support import (
    Recorder,
    blob_keys,
    errors,
    provide_request,
    refusing_registry,
    retrieve_request,
    rows,
    status,
)

OURS = samples.REPOSITORY_UNIQUE_ID
PID = "p1^^^&1.2.3&ISO"


class Crash(BaseException):
    """The process dying while the registry works (nothing catches it, like a kill)."""


def make(engine: sa.Engine, store: LocalDiskStore, register: Any) -> Repository:
    return Repository(engine, XdsConfig(repository_unique_id=OURS), store, register)


def one(uid: str, content: bytes = samples.CONTENT) -> Any:
    submit = samples.submission(PID, document={"unique_id": uid, "content": content})
    return provide_request(submit, {"Document01": content})


def age_rows(engine: sa.Engine, hours: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(documents).values(stored_at=dt.datetime(2000, 1, 1) + dt.timedelta(hours=hours)))


def age_blobs(store: LocalDiskStore, days: int = 2) -> None:
    old = time.time() - days * 86400
    for info in store.scan():
        os.utime(store.path(info.key), (old, old))


def test_a_crash_while_registering_leaves_a_pending_document_that_is_served_and_settled(
    engine: sa.Engine, store: LocalDiskStore
) -> None:
    def dying(submit: Any) -> Any:
        raise Crash()

    uid = samples.new_oid()
    with pytest.raises(Crash):
        make(engine, store, dying).provide(one(uid), [])
    [row] = rows(engine)
    assert (row.unique_id, row.status) == (uid, "pending")
    assert blob_keys(store) == {row.storage_key}
    # the registry may have committed before the crash: a consumer that found the entry gets the document
    payload, attachments = make(engine, store, Recorder()).retrieve(retrieve_request((OURS, uid)))
    assert status(payload) == "Success" and attachments[0].read() == samples.CONTENT

    asked: list[list[str]] = []
    assert settle(engine, store, OURS, lambda uids: asked.append(uids) or [uids[0]]) == Settled(0, 0), "too young"
    assert asked == []
    age_rows(engine, 0)
    assert settle(engine, store, OURS, lambda uids: asked.append(uids) or set(uids)).confirmed == 1
    assert asked == [[uid]]
    assert rows(engine)[0].status == "available" and blob_keys(store) == {row.storage_key}


def test_settle_removes_pending_documents_the_registry_does_not_know(engine: sa.Engine, store: LocalDiskStore) -> None:
    def dying(submit: Any) -> Any:
        raise Crash()

    kept, dropped = samples.new_oid(), samples.new_oid()
    for uid in (kept, dropped):
        with pytest.raises(Crash):
            make(engine, store, dying).provide(one(uid, uid.encode()), [])
    age_rows(engine, 0)
    result = settle(engine, store, OURS, lambda uids: {kept} & set(uids))
    assert (result.confirmed, result.removed) == (1, 1)
    [row] = rows(engine)
    assert (row.unique_id, row.status) == (kept, "available")
    assert blob_keys(store) == {row.storage_key}


def test_settle_changes_nothing_when_the_registry_cannot_be_asked(engine: sa.Engine, store: LocalDiskStore) -> None:
    def dying(submit: Any) -> Any:
        raise Crash()

    def unreachable(uids: list[str]) -> set[str]:
        raise ConnectionError("registry down")

    with pytest.raises(Crash):
        make(engine, store, dying).provide(one(samples.new_oid()), [])
    age_rows(engine, 0)
    before = rows(engine)
    with pytest.raises(ConnectionError):
        settle(engine, store, OURS, unreachable)
    assert rows(engine) == before and len(blob_keys(store)) == 1


def test_blobs_of_a_crash_before_the_rows_are_swept_when_old(engine: sa.Engine, store: LocalDiskStore) -> None:
    # a crash after storing, before the rows were written: blobs that no row names
    submit, incoming = plan(one(samples.new_oid()), [], OURS)
    store_documents(incoming, store)
    assert status(make(engine, store, Recorder()).provide(one(samples.new_oid()), [])) == "Success"
    store.put("other-user-blob", io.BytesIO(b"not ours"))
    assert sweep_orphans(engine, store) == 0, "too young: may be a submission in progress"
    age_blobs(store)
    assert sweep_orphans(engine, store) == 1
    [row] = rows(engine)
    assert blob_keys(store) == {row.storage_key, "other-user-blob"}


def test_an_identical_resubmission_during_a_refused_first_keeps_the_document(
    engine: sa.Engine, store: LocalDiskStore
) -> None:
    """Submission A is in the registry when the source resubmits (B); the registry accepts B and refuses A."""
    uid = samples.new_oid()
    inner: list[Any] = []

    def register_a(submit: Any) -> Any:
        answer = make(engine, store, Recorder()).provide(one(uid), [])  # B, accepted
        inner.append(answer)
        return refusing_registry()(submit)  # A, refused after B was confirmed

    answer = make(engine, store, register_a).provide(one(uid), [])
    assert status(answer) == "Failure" and status(inner[0]) == "Success"
    [row] = rows(engine)
    assert (row.unique_id, row.status) == (uid, "available")
    assert blob_keys(store) == {row.storage_key}, "B's copy went, A's blob now serves the document"
    payload, attachments = make(engine, store, Recorder()).retrieve(retrieve_request((OURS, uid)))
    assert status(payload) == "Success" and attachments[0].read() == samples.CONTENT


def test_an_identical_resubmission_confirmed_after_the_first_was_released(
    engine: sa.Engine, store: LocalDiskStore
) -> None:
    uid = samples.new_oid()

    def stored(request: Any) -> list[Incoming]:
        _, incoming = plan(request, [], OURS)
        store_documents(incoming, store)
        return incoming

    a, b = stored(one(uid)), stored(one(uid))
    assert records.claim(engine, OURS, a) == {uid}
    assert records.claim(engine, OURS, b) == set(), "B reuses A's row"
    assert records.release(engine, OURS, a, {uid}) == [a[0].stored.key]
    store.delete(a[0].stored.key)
    assert records.confirm(engine, OURS, b) == []
    [row] = rows(engine)
    assert (row.storage_key, row.status) == (b[0].stored.key, "available")


def test_a_non_identical_resubmission_while_the_first_is_pending(engine: sa.Engine, store: LocalDiskStore) -> None:
    uid = samples.new_oid()
    inner: list[Any] = []

    def register_a(submit: Any) -> Any:
        inner.append(make(engine, store, Recorder()).provide(one(uid, b"different"), []))
        return Recorder()(submit)

    assert status(make(engine, store, register_a).provide(one(uid), [])) == "Success"
    assert errors(inner[0]) == [("XDSNonIdenticalHash", uid)]
    [row] = rows(engine)
    assert row.status == "available" and blob_keys(store) == {row.storage_key}
