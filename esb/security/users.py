"""Users, roles and permissions in the engine's database (A1.21, B4.4), and password logins.

A user is a person (logs in with a password or an API token) or a system, a
node identified by its certificate (subject or SHA-256 fingerprint): an mTLS
peer or a WS-Security signer is mapped to its user and so to roles. Roles carry
permissions (:data:`esb.authz.PERMISSIONS`, or ``*`` for all) and optionally a
scope for image access (A2.6): the modalities and institution departments whose
studies its holders may see; a role without a scope sees every study. A role
named ``anonymous`` applies to every caller, identified or not.

Users are disabled, never deleted (the audit trail names them). Failed logins
lock a user out with a growing backoff (:data:`MAX_FAILURES`,
:func:`lockout_seconds`); every login attempt is audited.

:class:`UserStore` is the administration (``esb users``); :class:`UserDirectory`
the cached, read-only view :mod:`esb.authz` asks on every request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from esb.audit import emit, events
from esb.errors import AuthenticationError, ConfigError
from esb.journal.schema import metadata
from esb.journal.store import utcnow
from esb.security import passwords

log = logging.getLogger("esb.users")

PERSON, SYSTEM = "person", "system"
ANONYMOUS_ROLE = "anonymous"
ALL = "*"
#: consecutive failed logins before the first lockout
MAX_FAILURES = 5
LOCKOUT_BASE = 60.0
LOCKOUT_MAX = 3600.0
#: how long the directory trusts what it read (a change made on another node shows after this)
CACHE_SECONDS = 5.0

users = Table(
    "esb_users",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("kind", String(16), nullable=False),  # person | system
    Column("password_hash", String(200)),
    Column("cert_subject", String(500)),  # RFC 4514, normalized (normalize_subject)
    Column("cert_fingerprint", String(64)),  # SHA-256 of the DER certificate, lowercase hex
    Column("disabled", Boolean, nullable=False),
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until", DateTime),
    Column("last_login_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("ix_esb_users_fingerprint", "cert_fingerprint"),
    Index("ix_esb_users_subject", "cert_subject"),
)

roles = Table(
    "esb_roles",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("description", Text, nullable=False),
    Column("modalities", String(500), nullable=False),  # comma list, "" = any
    Column("departments", String(1000), nullable=False),  # comma list, "" = any
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

role_permissions = Table(
    "esb_role_permissions",
    metadata,
    Column("role", String(200), ForeignKey("esb_roles.name"), primary_key=True),
    Column("permission", String(100), primary_key=True),
)

user_roles = Table(
    "esb_user_roles",
    metadata,
    Column("user_name", String(200), ForeignKey("esb_users.name"), primary_key=True),
    Column("role", String(200), ForeignKey("esb_roles.name"), primary_key=True),
    Index("ix_esb_user_roles_role", "role"),
)

api_tokens = Table(
    "esb_api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # shown to admins, names the token for revocation
    Column("user_name", String(200), ForeignKey("esb_users.name"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 hex: the token itself is never kept
    Column("label", String(200), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime),
    Column("last_used_at", DateTime),
    Column("revoked_at", DateTime),
    Index("ix_esb_api_tokens_user", "user_name"),
)

#: WS-Security replay window (adapters/soap/wssecurity.py): digests of signatures and nonces seen,
#: kept in the shared database so a message replayed to another node is caught too
wss_seen = Table(
    "esb_wss_seen",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("expires_at", DateTime, nullable=False),
    Index("ix_esb_wss_seen_expires", "expires_at"),
)


@dataclass(frozen=True)
class Scope:
    """Which studies a role's holders may see (A2.6); empty sets mean "any"."""

    modalities: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()

    @property
    def unscoped(self) -> bool:
        return not self.modalities and not self.departments

    def __str__(self) -> str:
        parts = [f"modalities={','.join(sorted(self.modalities))}"] if self.modalities else []
        parts += [f"departments={','.join(sorted(self.departments))}"] if self.departments else []
        return " ".join(parts) or "all studies"


@dataclass(frozen=True)
class Role:
    name: str
    permissions: frozenset[str]
    scope: Scope = Scope()
    description: str = ""

    def grants(self, permission: str) -> bool:
        return ALL in self.permissions or permission in self.permissions


@dataclass(frozen=True)
class User:
    name: str
    kind: str
    disabled: bool
    has_password: bool
    cert_subject: str | None
    cert_fingerprint: str | None
    roles: tuple[str, ...]
    locked_until: datetime | None
    last_login_at: datetime | None


def split_list(text: str | Iterable[str]) -> frozenset[str]:
    """``"CT, MR"`` or ``["CT", "MR"]`` -> ``{"CT", "MR"}``; modalities and departments compare upper-cased."""
    items = text.split(",") if isinstance(text, str) else text
    return frozenset(i.strip().upper() for i in items if i.strip())


def normalize_subject(subject: str) -> str:
    """An RFC 4514 subject in one spelling, so a DN an admin typed matches the one a TLS listener reports:
    spaces around separators dropped, attribute names upper-cased, values compared ignoring case and
    repeated spaces (X.520 caseIgnoreMatch, as the allowed-peers lists do)."""
    parts = []
    for rdn in re.split(r"(?<!\\),", subject.strip()):
        kind, sep, value = rdn.partition("=")
        parts.append(f"{kind.strip().upper()}{sep}{' '.join(value.split()).casefold()}")
    return ",".join(parts)


def certificate_identity(der: bytes) -> tuple[str, str]:
    """(RFC 4514 subject, SHA-256 fingerprint hex) of a DER certificate, as the TLS listeners report them."""
    from cryptography import x509

    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    return subject, hashlib.sha256(der).hexdigest()


def lockout_seconds(failures: int) -> float:
    """How long a user is locked after ``failures`` consecutive failures: none below MAX_FAILURES,
    then 1 min, doubling with each further failure, at most 1 h."""
    if failures < MAX_FAILURES:
        return 0.0
    return min(LOCKOUT_MAX, LOCKOUT_BASE * 2.0 ** (failures - MAX_FAILURES))


def has_user_tables(engine: Engine) -> bool:
    """Whether the schema has users at all (a database not upgraded yet has none: legacy policy)."""
    return bool(inspect(engine).has_table(users.name))


class UserStore:
    """Administration of users, roles and grants; every method is one short transaction."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    # -- users -----------------------------------------------------------------------

    def count(self) -> int:
        if not has_user_tables(self.engine):
            return 0
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(users)).scalar_one())

    def add_user(
        self,
        name: str,
        *,
        password: str | None = None,
        kind: str = PERSON,
        cert_subject: str | None = None,
        cert_fingerprint: str | None = None,
    ) -> User:
        name = name.strip()
        if not name or len(name) > 200 or any(c.isspace() or c in ",:" for c in name):
            raise ConfigError(f"user name '{name}' is not usable: 1-200 characters, no spaces, commas or colons")
        if password is not None and (problem := passwords.password_problem(password)):
            raise ConfigError(problem)
        fingerprint = _fingerprint(cert_fingerprint) if cert_fingerprint else None
        now = self.clock()
        row = {
            "name": name, "kind": kind, "disabled": False, "failed_logins": 0, "created_at": now, "updated_at": now,
            "password_hash": passwords.hash_password(password) if password is not None else None,
            "cert_subject": normalize_subject(cert_subject) if cert_subject else None,
            "cert_fingerprint": fingerprint,
        }  # fmt: skip
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(users).values(**row))
        except IntegrityError:
            raise ConfigError(f"user '{name}' exists already") from None
        found = self.user(name)
        assert found is not None
        return found

    def user(self, name: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
            held = conn.execute(select(user_roles.c.role).where(user_roles.c.user_name == name)).scalars().all()
        return _user(row, tuple(sorted(held))) if row is not None else None

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.name)).all()
            held: dict[str, list[str]] = {}
            for user_name, role in conn.execute(select(user_roles.c.user_name, user_roles.c.role)):
                held.setdefault(user_name, []).append(role)
        return [_user(r, tuple(sorted(held.get(r.name, [])))) for r in rows]

    def set_password(self, name: str, password: str) -> None:
        if problem := passwords.password_problem(password):
            raise ConfigError(problem)
        self._update(name, password_hash=passwords.hash_password(password), failed_logins=0, locked_until=None)

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        self._update(name, disabled=disabled)

    def _update(self, name: str, **values: object) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(update(users).where(users.c.name == name).values(**values, updated_at=self.clock()))
        if done.rowcount == 0:
            raise ConfigError(f"no user '{name}'")

    # -- roles -------------------------------------------------------------------------

    def save_role(
        self, name: str, permissions: Iterable[str], *, scope: Scope = Scope(), description: str = ""
    ) -> Role:
        """Create the role, or replace its permissions, scope and description."""
        from esb.authz import PERMISSIONS

        wanted = frozenset(p.strip() for p in permissions if p.strip())
        unknown = sorted(p for p in wanted if p != ALL and p not in PERMISSIONS)
        if unknown:
            raise ConfigError(f"role '{name}': unknown permission '{unknown[0]}' (known: {', '.join(PERMISSIONS)}, *)")
        now = self.clock()
        values = {"description": description, "modalities": ",".join(sorted(scope.modalities)),
                  "departments": ",".join(sorted(scope.departments)), "updated_at": now}  # fmt: skip
        with self.engine.begin() as conn:
            if conn.execute(update(roles).where(roles.c.name == name).values(**values)).rowcount == 0:
                conn.execute(insert(roles).values(name=name, created_at=now, **values))
            conn.execute(delete(role_permissions).where(role_permissions.c.role == name))
            if wanted:
                conn.execute(insert(role_permissions), [{"role": name, "permission": p} for p in sorted(wanted)])
        return Role(name, wanted, scope, description)

    def roles(self) -> list[Role]:
        with self.engine.connect() as conn:
            return _roles(conn, None)

    def grant(self, role: str, user: str) -> None:
        try:
            with self.engine.begin() as conn:
                self._known(conn, role, user)
                conn.execute(insert(user_roles).values(user_name=user, role=role))
        except IntegrityError:
            pass  # held already

    def revoke(self, role: str, user: str) -> None:
        with self.engine.begin() as conn:
            self._known(conn, role, user)
            conn.execute(delete(user_roles).where(user_roles.c.user_name == user, user_roles.c.role == role))

    @staticmethod
    def _known(conn: Connection, role: str, user: str) -> None:
        if conn.execute(select(roles.c.name).where(roles.c.name == role)).first() is None:
            raise ConfigError(f"no role '{role}'")
        if conn.execute(select(users.c.name).where(users.c.name == user)).first() is None:
            raise ConfigError(f"no user '{user}'")

    # -- logins ------------------------------------------------------------------------

    def login(self, name: str, password: str, *, method: str = "password", peer_host: str = "") -> User:
        """Check a password; every attempt is audited, repeated failures lock the user out for a while.

        Raises :class:`AuthenticationError` with one message for every cause (the
        audit record and the DEBUG log keep the cause). Runs ~0.1 s of argon2id:
        async callers use a worker thread.
        """
        now = self.clock()
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        reason = ""
        if row is None:
            passwords.verify_password(None, password)  # same time as a real check
            reason = "unknown user"
        elif row.disabled:
            reason = "user disabled"
        elif row.locked_until is not None and row.locked_until > now:
            reason = "locked out after repeated failures"
        elif not passwords.verify_password(row.password_hash, password):
            reason = "wrong password"
            failures = int(row.failed_logins) + 1
            lock = lockout_seconds(failures)
            with self.engine.begin() as conn:
                conn.execute(
                    update(users).where(users.c.name == name).values(
                        failed_logins=users.c.failed_logins + 1,
                        locked_until=now + timedelta(seconds=lock) if lock else row.locked_until,
                    )
                )  # fmt: skip
            if lock:
                log.warning("user %s locked out for %gs after %d failed logins", name, lock, failures)
        emit(events.user_authentication(user=name, success=not reason, peer_host=peer_host, method=method))
        if reason:
            log.info("login of %s by %s refused", name, method)
            log.debug("login of %s refused: %s", name, reason)
            raise AuthenticationError(f"login of '{name}' failed (wrong name or password, disabled or locked out)")
        assert row is not None
        values: dict[str, object] = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
        if passwords.needs_rehash(str(row.password_hash)):
            values["password_hash"] = passwords.hash_password(password)
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.name == name).values(**values))
        found = self.user(name)
        assert found is not None
        return found


def _fingerprint(text: str) -> str:
    value = text.replace(":", "").strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError(f"'{text}' is not a SHA-256 certificate fingerprint (64 hex digits, colons allowed)")
    return value


def _user(r: Row[Any], held: tuple[str, ...]) -> User:
    return User(
        name=r.name, kind=r.kind, disabled=bool(r.disabled), has_password=r.password_hash is not None,
        cert_subject=r.cert_subject, cert_fingerprint=r.cert_fingerprint, roles=held,
        locked_until=r.locked_until, last_login_at=r.last_login_at,
    )  # fmt: skip


def _roles(conn: Connection, names: Iterable[str] | None) -> list[Role]:
    query = select(roles).order_by(roles.c.name)
    granted = select(role_permissions.c.role, role_permissions.c.permission)
    if names is not None:
        wanted = list(names)
        query = query.where(roles.c.name.in_(wanted))
        granted = granted.where(role_permissions.c.role.in_(wanted))
    rows = conn.execute(query).all()
    permissions: dict[str, set[str]] = {}
    for role, permission in conn.execute(granted):
        permissions.setdefault(role, set()).add(permission)
    return [
        Role(r.name, frozenset(permissions.get(r.name, ())), Scope(split_list(r.modalities), split_list(r.departments)),
             r.description)
        for r in rows
    ]  # fmt: skip


@dataclass
class _Cached:
    value: object
    until: float


class UserDirectory:
    """What authorization asks on every request, cached for :data:`CACHE_SECONDS`.

    Several nodes share the database, so nothing here is authoritative for long:
    a role granted on one node is honoured by the others within the cache time.
    A database that has no user tables (not upgraded) has no users.
    """

    def __init__(self, engine: Engine, *, ttl: float = CACHE_SECONDS, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.ttl = ttl
        self.store = UserStore(engine, clock=clock)
        self._cache: dict[tuple[str, ...], _Cached] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def _cached(self, key: tuple[str, ...], load: Callable[[], object]) -> object:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit.until > now:
                return hit.value
        value = load()
        if self.ttl > 0:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key] = _Cached(value, now + self.ttl)
        return value

    def configured(self) -> bool:
        """Whether any user exists: until one does, the engine keeps its open, pre-users policy."""
        return bool(self._cached(("configured",), lambda: self.store.count() > 0))

    def user(self, name: str) -> User | None:
        found = self._cached(("user", name), lambda: self.store.user(name))
        return found if isinstance(found, User) else None

    def user_by_certificate(self, subject: str | None, fingerprint: str | None) -> User | None:
        """The system user with this certificate: by fingerprint first, then by subject."""

        def load() -> User | None:
            named = select(users.c.name)
            with self.engine.connect() as conn:
                row = None
                if fingerprint:
                    row = conn.execute(named.where(users.c.cert_fingerprint == fingerprint.lower())).first()
                if row is None and subject:
                    row = conn.execute(named.where(users.c.cert_subject == normalize_subject(subject))).first()
            return self.store.user(row.name) if row is not None else None

        found = self._cached(("cert", subject or "", fingerprint or ""), load)
        return found if isinstance(found, User) else None

    def roles_of(self, user: User | None) -> list[Role]:
        """The roles that apply: the user's own and the ``anonymous`` role (for everyone)."""
        names = sorted({ANONYMOUS_ROLE, *(user.roles if user is not None else ())})

        def load() -> list[Role]:
            with self.engine.connect() as conn:
                return _roles(conn, names)

        found = self._cached(("roles", *names), load)
        return list(found) if isinstance(found, list) else []


_directories: weakref.WeakKeyDictionary[Engine, UserDirectory] = weakref.WeakKeyDictionary()
_directories_lock = threading.Lock()


def directory(engine: Engine) -> UserDirectory:
    """The shared directory of a database engine (one cache per engine, for the engine's life)."""
    with _directories_lock:
        found = _directories.get(engine)
        if found is None:
            found = _directories[engine] = UserDirectory(engine)
        return found


def directory_of(holder: object) -> UserDirectory | None:
    """The directory of whatever holds the engine's database (an archive, a journal, an index), if it does."""
    engine = getattr(holder, "engine", None)
    return directory(engine) if isinstance(engine, Engine) else None
