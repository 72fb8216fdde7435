"""Users, roles, passwords (argon2id), lockout and API tokens on a real database; every login audited."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from esb.audit import clear_captured
from esb.errors import AuthenticationError, ConfigError
from esb.journal import schema
from esb.security import passwords, tokens
from esb.security.users import (
    MAX_FAILURES,
    Scope,
    UserDirectory,
    UserStore,
    api_tokens,
    lockout_seconds,
    normalize_subject,
    users,
)
from tests.security import users_support
from tests.security.users_support import UsersDb, logins

#: shared fixtures (no conftest here: another helper's tests share this directory)
users_db = users_support.users_db
_upgraded_db = users_support._upgraded_db
any_users_db = users_support.any_users_db

PASSWORD = "correct horse battery"
MY_TABLES = {"esb_users", "esb_roles", "esb_role_permissions", "esb_user_roles", "esb_api_tokens", "esb_wss_seen"}


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 29, 8, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def test_migration_0013_builds_exactly_the_users_tables(users_db: UsersDb) -> None:
    with users_db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        mine = [d for d in compare_metadata(context, schema.metadata) if any(t in str(d) for t in MY_TABLES)]
    assert mine == []
    assert MY_TABLES <= set(sa.inspect(users_db.engine).get_table_names())


def test_passwords_are_argon2id_salted_and_verified() -> None:
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert stored != passwords.hash_password(PASSWORD)
    assert passwords.verify_password(stored, PASSWORD)
    assert not passwords.verify_password(stored, PASSWORD + "!")
    assert not passwords.verify_password(None, PASSWORD)
    assert not passwords.verify_password("not a hash", PASSWORD)
    assert not passwords.needs_rehash(stored)
    weak = passwords.HASHER.__class__(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    assert passwords.needs_rehash(weak)
    assert passwords.password_problem("short") is not None
    assert passwords.password_problem(" " + PASSWORD) is not None
    assert passwords.password_problem(PASSWORD) is None


def test_users_roles_and_grants(any_users_db: UsersDb) -> None:
    store = any_users_db.store
    assert store.count() == 0
    store.add_user("alice", password=PASSWORD)
    fingerprint = "AB:" * 31 + "AB"
    node = store.add_user("pacs1", kind="system", cert_subject="CN=pacs1,  O=Hosp A", cert_fingerprint=fingerprint)
    assert node.cert_fingerprint == "ab" * 32 and node.cert_subject == "CN=pacs1,O=hosp a"
    assert normalize_subject("cn = PACS1 , o=Hosp  A") == normalize_subject("CN=pacs1,O=Hosp A")
    with pytest.raises(ConfigError, match="exists already"):
        store.add_user("alice")
    with pytest.raises(ConfigError, match="not usable"):
        store.add_user("bad name")
    with pytest.raises(ConfigError, match="at least 12"):
        store.add_user("carol", password="short")
    with pytest.raises(ConfigError, match="unknown permission 'dicom.qeury'"):
        store.save_role("viewer", ["dicom.qeury"])
    role = store.save_role("viewer", ["dicom.query", "dicom.retrieve"], scope=Scope(frozenset({"CT"})))
    assert role.grants("dicom.query") and not role.grants("pix.query")
    store.grant("viewer", "alice")
    store.grant("viewer", "alice")  # held already: no error
    with pytest.raises(ConfigError, match="no role 'nope'"):
        store.grant("nope", "alice")
    alice = store.user("alice")
    assert alice is not None and alice.roles == ("viewer",) and alice.has_password
    store.save_role("viewer", ["pix.query"], description="changed")
    assert [r.permissions for r in store.roles()] == [frozenset({"pix.query"})]
    store.revoke("viewer", "alice")
    assert [u.name for u in store.list_users()] == ["alice", "pacs1"]
    assert store.user("alice").roles == ()  # type: ignore[union-attr]


def test_login_is_audited_and_locks_out_after_repeated_failures(any_users_db: UsersDb) -> None:
    clock = Clock()
    store = UserStore(any_users_db.engine, clock=clock)
    store.add_user("alice", password=PASSWORD)
    clear_captured()
    assert store.login("alice", PASSWORD, peer_host="10.0.0.7").last_login_at == clock.now
    assert len(logins("alice", success=True)) == 1
    for _ in range(MAX_FAILURES):
        with pytest.raises(AuthenticationError, match="wrong name or password"):
            store.login("alice", "wrong password!")
    assert len(logins("alice", success=False)) == MAX_FAILURES
    with pytest.raises(AuthenticationError):  # locked: the right password does not help now
        store.login("alice", PASSWORD)
    clock.advance(lockout_seconds(MAX_FAILURES) + 1)
    store.login("alice", PASSWORD)  # the lock ran out; success resets the count
    with any_users_db.engine.connect() as conn:
        row = conn.execute(sa.select(users.c.failed_logins, users.c.locked_until)).one()
    assert row.failed_logins == 0 and row.locked_until is None
    assert lockout_seconds(MAX_FAILURES - 1) == 0 and lockout_seconds(MAX_FAILURES + 1) == 120
    assert lockout_seconds(100) == 3600
    with pytest.raises(AuthenticationError):
        store.login("nobody", PASSWORD)
    assert len(logins("nobody", success=False)) == 1
    store.set_disabled("alice")
    with pytest.raises(AuthenticationError):
        store.login("alice", PASSWORD)


def test_api_tokens_are_shown_once_kept_hashed_expire_and_revoke(any_users_db: UsersDb) -> None:
    clock = Clock()
    any_users_db.store.add_user("pacs1", kind="system", cert_fingerprint="cd" * 32)
    token_id, token = tokens.create_token(any_users_db.engine, "pacs1", expires_in=3600, label="ris", clock=clock)
    assert tokens.looks_like_token(token)
    with any_users_db.engine.connect() as conn:
        stored = conn.execute(sa.select(api_tokens.c.token_hash)).scalar_one()
    assert stored == tokens.digest(token) and token not in stored
    clear_captured()
    assert tokens.authenticate_token(any_users_db.engine, token, peer_host="10.0.0.9", clock=clock) == "pacs1"
    assert len(logins("pacs1", success=True)) == 1
    assert tokens.list_tokens(any_users_db.engine, "pacs1")[0].last_used_at == clock.now
    with pytest.raises(AuthenticationError):
        tokens.authenticate_token(any_users_db.engine, token + "x", clock=clock)
    assert len(logins("unknown", success=False)) == 1
    clock.advance(3601)
    with pytest.raises(AuthenticationError):
        tokens.authenticate_token(any_users_db.engine, token, clock=clock)
    second_id, second = tokens.create_token(any_users_db.engine, "pacs1", clock=clock)
    assert tokens.authenticate_token(any_users_db.engine, second, clock=clock) == "pacs1"
    assert tokens.revoke_token(any_users_db.engine, second_id) == "pacs1"
    with pytest.raises(AuthenticationError):
        tokens.authenticate_token(any_users_db.engine, second, clock=clock)
    assert {t.id for t in tokens.list_tokens(any_users_db.engine)} == {token_id, second_id}
    with pytest.raises(ConfigError, match="no user"):
        tokens.create_token(any_users_db.engine, "ghost")


def test_directory_maps_certificates_to_system_users_and_caches(any_users_db: UsersDb) -> None:
    directory = UserDirectory(any_users_db.engine, ttl=60)
    assert not directory.configured()
    any_users_db.store.add_user("pacs1", kind="system", cert_subject="CN=pacs1,O=Hosp", cert_fingerprint="ef" * 32)
    assert not directory.configured()  # cached: other nodes' changes show within the cache time
    directory.invalidate()
    assert directory.configured()
    by_print = directory.user_by_certificate(None, "EF" * 32)
    by_subject = directory.user_by_certificate("CN=pacs1, O=Hosp", None)
    assert by_print is not None and by_subject is not None and by_print.name == by_subject.name == "pacs1"
    assert directory.user_by_certificate("CN=other", "00" * 32) is None
    any_users_db.store.save_role("anonymous", ["pdq.query"])
    directory.invalidate()
    assert [r.name for r in directory.roles_of(None)] == ["anonymous"]


def test_a_database_without_the_users_tables_has_no_users() -> None:
    engine = sa.create_engine("sqlite://")
    try:
        assert not UserDirectory(engine).configured()
    finally:
        engine.dispose()
