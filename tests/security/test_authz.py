"""esb.authz: the open policy until users exist, then users, roles, tokens and scopes; every decision audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from esb.audit import clear_captured
from esb.authz import (
    PERMISSIONS,
    Caller,
    PermissionDeniedError,
    authorize,
    authorize_caller,
    authorize_exchange,
    current_actor,
)
from esb.authz import PermissionDeniedError as FromAuthz
from esb.errors import EsbError
from esb.errors import PermissionDeniedError as FromErrors
from esb.exchange import Exchange
from esb.security import tokens
from esb.security.users import Scope, UserDirectory
from tests.security import users_support
from tests.security.users_support import UsersDb, grants, logins, refusals

#: shared fixtures (no conftest here: another helper's tests share this directory)
users_db = users_support.users_db
_upgraded_db = users_support._upgraded_db

RESERVED = ("audit.read", "users.manage", "certs.manage", "pix.query", "pdq.query", "xds.query", "xds.retrieve",
            "dicom.query", "dicom.retrieve")  # fmt: skip


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ESB_ACTOR", "ESB_TOKEN", "ESB_ADMIN_DENY", "ESB_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    clear_captured()


def directory(users_db: UsersDb) -> UserDirectory:
    return UserDirectory(users_db.engine, ttl=0)


def test_one_error_class_and_the_reserved_permissions() -> None:
    assert FromAuthz is FromErrors and issubclass(PermissionDeniedError, EsbError)
    assert set(RESERVED) <= set(PERMISSIONS) and len(set(PERMISSIONS)) == len(PERMISSIONS)
    with pytest.raises(ValueError, match="unknown permission"):
        authorize("empi.raed", users=None)


def test_without_users_the_os_user_may_do_everything_but_what_is_denied(
    users_db: UsersDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = directory(users_db)
    assert authorize("empi.read", users=found) == current_actor()
    monkeypatch.setenv("ESB_ACTOR", "dr-wang")
    assert authorize("empi.merge", users=found, target="patient") == "dr-wang"
    assert grants("dr-wang", "empi.merge")
    monkeypatch.setenv("ESB_ADMIN_DENY", "empi.merge")
    with pytest.raises(PermissionDeniedError, match="'dr-wang' may not empi.merge"):
        authorize("empi.merge", users=found)
    assert refusals("dr-wang", "empi.merge")
    assert authorize_caller(Caller(), "pix.query", found).scopes is None  # services: open to every caller


def test_with_users_the_actor_needs_a_role_that_grants_it(users_db: UsersDb, monkeypatch: pytest.MonkeyPatch) -> None:
    store = users_db.store
    store.add_user("alice")
    store.add_user("bob")
    store.save_role("empi-reader", ["empi.read"])
    store.grant("empi-reader", "alice")
    found = directory(users_db)
    assert authorize("empi.read", "alice", users=found) == "alice"
    with pytest.raises(PermissionDeniedError, match="'alice' may not empi.merge .no role of theirs grants it"):
        authorize("empi.merge", "alice", users=found)
    with pytest.raises(PermissionDeniedError, match="'mallory' may not empi.read .not a known user"):
        authorize("empi.read", "mallory", users=found)
    monkeypatch.setenv("ESB_ACTOR", "bob")
    with pytest.raises(PermissionDeniedError, match="'bob' may not empi.read"):
        authorize("empi.read", users=found)
    store.set_disabled("alice")
    with pytest.raises(PermissionDeniedError, match="disabled"):
        authorize("empi.read", "alice", users=found)
    assert [len(refusals(u)) for u in ("alice", "mallory", "bob")] == [2, 1, 1]
    assert grants("alice", "empi.read")


def test_esb_token_names_the_cli_actor_and_its_login_is_audited(
    users_db: UsersDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    users_db.store.add_user("ops")
    users_db.store.save_role("admin", ["*"])
    users_db.store.grant("admin", "ops")
    _, token = tokens.create_token(users_db.engine, "ops")
    monkeypatch.setenv("ESB_ACTOR", "somebody-else")
    monkeypatch.setenv("ESB_TOKEN", token)
    assert authorize("users.manage", users=directory(users_db)) == "ops"
    assert logins("ops", success=True)
    monkeypatch.setenv("ESB_TOKEN", token[:-2] + "xx")
    with pytest.raises(PermissionDeniedError, match="ESB_TOKEN is not valid"):
        authorize("users.manage", users=directory(users_db))
    assert logins(success=False) and refusals(permission="users.manage")


def test_the_cli_asks_the_configured_database(users_db: UsersDb, tmp_path: Path) -> None:
    """authorize() without a directory: the database of the running command's config (here ESB_DB_URL)."""
    import click

    from esb.cli.common import guard, main_group

    @main_group.command(name="authz-probe", hidden=True)
    @click.pass_context
    @guard
    def probe(ctx: click.Context) -> None:
        click.echo(authorize("xds.read"))

    try:
        env = {"ESB_DB_URL": users_db.url, "ESB_ACTOR": "alice", "ESB_CONFIG": None}
        assert CliRunner(env=env).invoke(main_group, ["authz-probe"]).stdout.strip() == "alice"  # no users yet
        users_db.store.add_user("alice")
        refused = CliRunner(env=env).invoke(main_group, ["authz-probe"])
        assert refused.exit_code == 1 and "'alice' may not xds.read" in refused.stderr
        env["ESB_DB_URL"] = f"sqlite:///{tmp_path}/nothing-here/esb.db"
        assert CliRunner(env=env).invoke(main_group, ["authz-probe"]).exit_code == 0  # a database not made yet
        assert not (tmp_path / "nothing-here").exists()  # and asking did not make it
    finally:
        main_group.commands.pop("authz-probe")


def test_service_callers_by_user_certificate_or_anonymous_role(users_db: UsersDb) -> None:
    store = users_db.store
    store.add_user("dr-li")
    store.add_user("pacs1", kind="system", cert_subject="CN=pacs1,O=Hosp A", cert_fingerprint="12" * 32)
    store.save_role("ct-readers", ["dicom.query"], scope=Scope(frozenset({"CT"})))
    store.save_role("mr-radiology", ["dicom.query"], scope=Scope(frozenset({"MR"}), frozenset({"RADIOLOGY"})))
    store.save_role("pix", ["pix.query"])
    for role, user in (("ct-readers", "dr-li"), ("mr-radiology", "dr-li"), ("pix", "pacs1")):
        store.grant(role, user)
    found = directory(users_db)
    scoped = authorize_caller(Caller(user="dr-li"), "dicom.query", found)
    assert scoped.actor == "dr-li" and scoped.scopes is not None and len(scoped.scopes) == 2
    node = Exchange(b"", headers={"tls-peer-subject": "CN=pacs1,O=Hosp A", "tls-peer-fingerprint": "00" * 32})
    assert authorize_exchange(node, "pix.query", found).actor == "pacs1"
    with pytest.raises(PermissionDeniedError, match="'pacs1' may not dicom.query"):
        authorize_exchange(node, "dicom.query", found)
    with pytest.raises(PermissionDeniedError, match="'anonymous' may not pdq.query .not a known user"):
        authorize_caller(Caller(), "pdq.query", found)
    with pytest.raises(PermissionDeniedError, match="'eve' may not pix.query"):
        authorize_exchange(Exchange(b"", headers={"auth-user": "eve"}), "pix.query", found)
    store.save_role("anonymous", ["pdq.query"])
    assert authorize_caller(Caller(), "pdq.query", found).scopes is None
    store.save_role("anonymous", ["pdq.query", "dicom.query"])
    assert authorize_caller(Caller(user="dr-li"), "dicom.query", found).scopes is None  # an unscoped role wins
    assert len(refusals()) == 3
