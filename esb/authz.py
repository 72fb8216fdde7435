"""The one authorization check: every admin operation and every query service goes through here.

Two policies, chosen by the database itself:

- **No user configured** (a fresh install, ``make run``, the tests): the actor is
  ``ESB_ACTOR`` or the operating-system user running ``esb``; everything is
  allowed except what ``ESB_ADMIN_DENY`` (comma-separated permissions, or ``*``)
  closes off; query services answer every caller.
- **Users configured** (``esb users add``, see docs/security.md): the actor must
  be a known, enabled user holding a role that grants the permission. The CLI
  names its actor with ``ESB_TOKEN`` (an API token: authenticated, audited as a
  login) or else ``ESB_ACTOR`` / the OS user name, taken as asserted, like a
  database's peer authentication: whoever runs ``esb`` on a node holds the
  database credentials already, so the check keeps honest admins in their lane
  and on the record; it is not a wall against the node's own operators. A
  caller of a query service is the ``auth-user`` its listener authenticated, or
  the system user of its TLS certificate, or else anonymous, which gets what
  the ``anonymous`` role grants (nothing unless that role exists).
  ``ESB_ADMIN_DENY`` still applies on top.

Every admin decision is audited (``admin_operation``, granted or not) and a
refusal is logged at WARNING with actor and permission, never data. Query
services audit refusals here; what they answer is audited by the transaction's
own audit record.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from esb.audit import emit, events
from esb.errors import AuthenticationError, PermissionDeniedError
from esb.security.users import Scope, User, UserDirectory, directory, directory_of

if TYPE_CHECKING:
    from esb.exchange import Exchange
    from esb.settings import Settings

__all__ = [
    "PERMISSIONS", "Caller", "Grant", "PermissionDeniedError", "Scope", "authorize", "authorize_caller",
    "authorize_exchange", "current_actor", "directory", "directory_of",
]  # fmt: skip

log = logging.getLogger("esb.authz")

#: permission names, one per admin operation family and one per query service
PERMISSIONS = (
    "empi.read", "empi.write", "empi.merge", "empi.review", "empi.domains",
    "listeners.read", "listeners.resend", "messages.read", "messages.replay", "messages.prune",
    "deadletter.manage", "routes.read", "db.upgrade",
    "xds.read", "xds.write", "dicom.read", "dicom.collect", "etl.read", "etl.run",
    "audit.read", "users.manage", "certs.manage",
    "pix.query", "pdq.query", "xds.query", "xds.retrieve", "dicom.query", "dicom.retrieve",
)  # fmt: skip

#: exchange headers naming the caller (set by listeners; a peer cannot send them)
AUTH_USER = "auth-user"
TLS_PEER_SUBJECT = "tls-peer-subject"
TLS_PEER_FINGERPRINT = "tls-peer-fingerprint"
ANONYMOUS = "anonymous"


def current_actor() -> str:
    return os.environ.get("ESB_ACTOR") or getpass.getuser()


@dataclass(frozen=True)
class Caller:
    """Who is calling a service, as the listener established it."""

    user: str | None = None
    tls_subject: str | None = None
    tls_fingerprint: str | None = None
    peer_host: str = ""

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Caller:
        return cls(
            user=headers.get(AUTH_USER) or None,
            tls_subject=headers.get(TLS_PEER_SUBJECT) or None,
            tls_fingerprint=headers.get(TLS_PEER_FINGERPRINT) or None,
            peer_host=headers.get("http-remote") or headers.get("mllp-remote") or "",
        )

    @property
    def name(self) -> str:
        return self.user or self.tls_subject or ANONYMOUS


@dataclass(frozen=True)
class Grant:
    """A permission granted: to whom, and over which studies (``scopes`` None: all of them)."""

    actor: str
    scopes: tuple[Scope, ...] | None = None


def authorize(
    permission: str, actor: str | None = None, *, users: UserDirectory | None = None, target: str = ""
) -> str:
    """Return the actor allowed to do ``permission``, or raise PermissionDeniedError.

    ``users`` is the directory to ask; the CLI leaves it out and the one of the
    configured database is used (``--config`` / ``ESB_CONFIG`` / ``ESB_DB_URL``).
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission '{permission}'")
    if users is not None:
        return _decide(permission, actor, users, target)
    with cli_directory() as found, _cli_audit(found):
        return _decide(permission, actor, found, target)


@contextlib.contextmanager
def _cli_audit(found: UserDirectory | None) -> Iterator[None]:
    """The CLI's decision stored in the audit trail of its database before the command goes on.

    A command may be refused before it opens the journal (where its own trail
    is installed), and its process ends soon after: the refusal must not stay
    in memory. A database without the audit table (not upgraded yet) has
    nothing to protect and keeps none.
    """
    from sqlalchemy import inspect

    from esb.audit.runtime import trail_for

    if found is None:
        yield
        return
    try:
        ready = inspect(found.engine).has_table("esb_audit_records")
    except SQLAlchemyError:
        ready = False
    if not ready:
        yield
        return
    # the node name the CLI's journal uses too (esb.cli.common.journal_of): one audit source per command
    with trail_for(found.engine, f"cli-{_configured_settings().node_id}"):
        yield


def _decide(permission: str, actor: str | None, users: UserDirectory | None, target: str) -> str:
    who = actor or current_actor()
    reason = ""
    try:
        if users is not None and users.configured():
            who, reason = _cli_actor(users, who, actor is None)
            reason = reason or _refusal(users, users.user(who), permission)
    except SQLAlchemyError as exc:  # fail closed: users may exist in a database we cannot read
        reason = f"the user database cannot be read: {type(exc).__name__}"
    denied = {p.strip() for p in os.environ.get("ESB_ADMIN_DENY", "").split(",") if p.strip()}
    if not reason and ("*" in denied or permission in denied):
        reason = "closed by ESB_ADMIN_DENY"
    emit(events.admin_operation(user=who, permission=permission, granted=not reason, target=target, patient_ids=()))
    if reason:
        log.warning("denied %s to %s", permission, who)
        raise PermissionDeniedError(f"'{who}' may not {permission} ({reason})")
    log.info("granted %s to %s", permission, who)
    return who


def _cli_actor(users: UserDirectory, who: str, from_environment: bool) -> tuple[str, str]:
    """(actor, refusal): the owner of the API token in ESB_TOKEN when one is set, else ``who``."""
    token = os.environ.get("ESB_TOKEN", "").strip()
    if not token or not from_environment:
        return who, ""
    from esb.security.tokens import authenticate_token

    try:
        return authenticate_token(users.engine, token, method="cli-token"), ""
    except AuthenticationError:
        return "(invalid ESB_TOKEN)", "the API token in ESB_TOKEN is not valid"


def _refusal(users: UserDirectory, user: User | None, permission: str) -> str:
    """Why ``user`` may not do ``permission`` ("" when it may); None is an unknown or anonymous caller."""
    if user is not None and user.disabled:
        return "the user is disabled"
    if any(role.grants(permission) for role in users.roles_of(user)):
        return ""
    if user is None:
        return "not a known user"
    return "no role of theirs grants it"


def authorize_caller(caller: Caller, permission: str, users: UserDirectory | None) -> Grant:
    """The grant of a query service's caller, or PermissionDeniedError (audited, logged at WARNING).

    The caller is ``auth-user`` (must be a known user), else the system user of
    its TLS certificate, else anonymous. Without configured users every caller
    is granted everything, as before users existed.
    """
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission '{permission}'")
    if users is None or not users.configured():
        return Grant(caller.name)
    user: User | None = None
    if caller.user:  # authenticated by the listener: must (still) be a user here
        user = users.user(caller.user)
    elif caller.tls_fingerprint or caller.tls_subject:  # a node: its system user, or anonymous
        user = users.user_by_certificate(caller.tls_subject, caller.tls_fingerprint)
    actor = user.name if user is not None else caller.name
    unknown = caller.user is not None and user is None
    reason = "not a known user" if unknown else _refusal(users, user, permission)
    if reason:
        emit(events.admin_operation(user=actor, permission=permission, granted=False, target="", patient_ids=()))
        log.warning("denied %s to %s", permission, actor)
        raise PermissionDeniedError(f"'{actor}' may not {permission} ({reason})")
    granting = [r for r in users.roles_of(user) if r.grants(permission)]
    if any(r.scope.unscoped for r in granting):
        return Grant(actor)
    return Grant(actor, tuple(r.scope for r in granting))


def authorize_exchange(exchange: Exchange, permission: str, users: UserDirectory | None) -> Grant:
    """:func:`authorize_caller` for the caller an exchange's listener recorded in its headers."""
    return authorize_caller(Caller.of(exchange.headers), permission, users)


@contextlib.contextmanager
def cli_directory() -> Iterator[UserDirectory | None]:
    """The user directory of the configured database, for one CLI decision (no cache; engine disposed after).

    An SQLite file that does not exist yet has no users (and is not created here).
    """
    from sqlalchemy.engine import make_url

    from esb.journal.database import make_engine

    url = _configured_db_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or not Path(database).exists():
            yield None
            return
    engine = make_engine(url)
    try:
        yield UserDirectory(engine, ttl=0)
    finally:
        engine.dispose()


def _configured_db_url() -> str:
    """The database URL of the running ``esb`` command's config (``--config``), else the default config."""
    return _configured_settings().db_url


def _configured_settings() -> Settings:
    from esb.settings import load_settings

    config = None
    try:
        import click

        context = click.get_current_context(silent=True)
    except ImportError:  # pragma: no cover - click is a dependency
        context = None
    if context is not None and isinstance(context.find_root().obj, dict):
        config = context.find_root().obj.get("config")
    return load_settings(config)
