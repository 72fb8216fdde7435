"""Publishers that overlap (two timer ticks, two nodes) make one manifest per study change (profiles.xdsi.claims).

The real archive, repository and registry, on SQLite and PostgreSQL; the
second publisher runs while the first one is inside its ITI-41 submission.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from esb.exchange import Attachment
from profiles.dicom.archive import Archive
from profiles.dicom.schema import ARCHIVED
from profiles.xds.registry.query import StoredQueries
from profiles.xds.repository import Repository
from profiles.xdsi import claims
from profiles.xdsi.publisher import Publisher
from profiles.xdsi.schema import claims as claims_table
from profiles.xdsi.schema import manifests
from tests.xds import samples
from tests.xds.test_query_support import adhoc_query, find_documents, ids_of
from tests.xdsi.conftest import CONFIG
from tests.xdsi.support import link_patient
from tests.xdsi.test_publisher import complete, cx, store_study

WAIT = 30.0


class HeldRepository:
    """The real repository, whose ITI-41 waits inside until the test lets it go on."""

    def __init__(self, inner: Repository) -> None:
        self.inner = inner
        self.inside = threading.Event()
        self.go_on = threading.Event()
        self.calls = 0

    def provide(self, request: Any, attachments: Sequence[Attachment] = ()) -> Any:
        self.calls += 1
        self.inside.set()
        assert self.go_on.wait(WAIT), "the test never let the submission go on"
        return self.inner.provide(request, attachments)


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_second_publisher_leaves_a_study_being_published_to_the_first(
    archive: Archive, repository: Repository, queries: StoredQueries, engine: sa.Engine, tmp_path: Path
) -> None:
    person = link_patient(engine)
    study_uid = store_study(archive, tmp_path / "study", ct=2)
    complete(archive, study_uid)
    held = HeldRepository(repository)
    first_node = Publisher(engine, archive, held, CONFIG, master_oid=samples.MASTER_OID, query=queries.run)
    second_node = Publisher(engine, archive, repository, CONFIG, master_oid=samples.MASTER_OID, query=queries.run)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(first_node.publish, study_uid)
        assert held.inside.wait(WAIT), "the first publisher never reached its submission"
        second = second_node.publish(study_uid)
        held.go_on.set()
        published = first.result(WAIT)
    assert (second.outcome, published.outcome) == ("busy", "published")
    assert held.calls == 1
    assert count(engine, manifests) == 1
    assert count(engine, claims_table) == 0, "the first publisher gave its claim back"
    # the next round finds the manifest the first publisher recorded
    assert second_node.publish(study_uid).outcome == "unchanged"
    approved = queries.run(adhoc_query("FindDocuments", find_documents(cx(person))))
    assert ids_of(approved) == [published.entry_uuid]
    info = archive.study(study_uid)
    assert info is not None and info.status == ARCHIVED


def test_a_claim_left_by_a_publisher_that_died_is_taken_over_once_its_lease_ran_out(
    archive: Archive, publisher: Publisher, engine: sa.Engine, tmp_path: Path
) -> None:
    link_patient(engine)
    study_uid = store_study(archive, tmp_path / "study")
    complete(archive, study_uid)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(sa.insert(claims_table).values(study_uid=study_uid, owner="dead", lease_until=now + claims.LEASE))
    assert publisher.publish(study_uid).outcome == "busy", "a live claim is respected"
    with engine.begin() as conn:
        conn.execute(sa.update(claims_table).values(lease_until=now - dt.timedelta(seconds=1)))
    publication = publisher.publish(study_uid)
    assert publication.outcome == "published"
    assert count(engine, claims_table) == 0
    assert count(engine, manifests) == 1


def test_only_one_of_two_callers_takes_an_expired_claim_and_only_its_owner_releases_it(engine: sa.Engine) -> None:
    now = dt.datetime.now(dt.UTC)
    first = claims.claim(engine, "1.2.3", now, dt.timedelta(seconds=-1))  # taken with a lease already over
    assert first is not None
    second = claims.claim(engine, "1.2.3", now)
    third = claims.claim(engine, "1.2.3", now)
    assert second is not None and second != first and third is None
    claims.release(engine, "1.2.3", first)  # the old owner's release does not free the new owner's claim
    assert claims.claim(engine, "1.2.3", now) is None
    claims.release(engine, "1.2.3", second)
    assert claims.claim(engine, "1.2.3", now) is not None
