"""Who may read the worklist (A2.6), as for the archive's C-FIND: with users configured, a modality's
association (anonymous, or the system user of its TLS certificate) needs dicom.query, and a role scoped
to modalities sees only their items."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from esb.runtime.engine import Engine
from esb.security.users import Scope, directory
from tests.security import users_support
from tests.security.users_support import UsersDb, refusals
from tests.support import StartEngine
from tests.worklist.samples import omi, orm
from tests.worklist.test_worklist import query, send, start_shipped, steps
from tests.xds_e2e.harness import segment

#: shared fixtures (the users database as tests/security has it)
users_db = users_support.users_db
_upgraded_db = users_support._upgraded_db


@pytest.fixture
async def engine(
    users_db: UsersDb, start_engine: StartEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Engine:
    users_db.store.add_user("admin")  # users are configured from now on: callers need grants
    users_db.store.save_role("admin", ["*"])
    users_db.store.grant("admin", "admin")
    return await start_shipped(users_db.url, tmp_path, start_engine, monkeypatch)


async def test_an_anonymous_modality_needs_the_grant_and_a_scoped_one_sees_its_modalities(
    engine: Engine, users_db: UsersDb
) -> None:
    for message in (orm("s1", accession="CTA", modality="CT"), omi("s2", accession="MRA")):
        ack = await asyncio.to_thread(send, engine, message)
        assert segment(ack, "MSA")[1] == "AA", ack
    with pytest.raises(AssertionError, match="0x124"):  # Refused: Not Authorized
        await asyncio.to_thread(query, engine)
    assert refusals("anonymous", "dicom.query")

    def regrant(scope: Scope) -> None:
        users_db.store.save_role("anonymous", ["dicom.query"], scope=scope)
        directory(engine.journal.engine).invalidate()  # the authorization cache, as an admin's change on this node

    regrant(Scope(frozenset({"CT"})))
    assert steps(await asyncio.to_thread(query, engine)) == [("CTA", "SPSCTA")]
    regrant(Scope(departments=frozenset({"RADIOLOGY"})))
    assert await asyncio.to_thread(query, engine) == []  # items carry no department to check
    regrant(Scope())
    assert steps(await asyncio.to_thread(query, engine)) == [("CTA", "SPSCTA"), ("MRA", "S1")]
