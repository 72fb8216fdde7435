"""API tokens for systems and scripts: random, shown once, kept only as a SHA-256 digest.

A token is ``esb_`` and 43 URL-safe characters (32 random bytes). The database
keeps its SHA-256: a 256-bit random secret needs no slow KDF, a stolen table
gives no usable token, and a lookup is one indexed query, cheap enough for
every HTTP request (``Authorization: Bearer``) and every CLI call (``ESB_TOKEN``).
Tokens expire (optional), can be revoked, and remember when they were last
used (written at most once a minute per token, not on every request).
Every check is audited as a login attempt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from esb.audit import emit, events
from esb.errors import AuthenticationError, ConfigError
from esb.journal.store import utcnow
from esb.security.users import api_tokens, users

PREFIX = "esb_"
RANDOM_BYTES = 32
#: last_used_at is rewritten only when older than this
TOUCH_EVERY = timedelta(seconds=60)

log = logging.getLogger("esb.users")


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def new_token() -> str:
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(RANDOM_BYTES)).rstrip(b"=").decode("ascii")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(text: str) -> bool:
    return text.startswith(PREFIX) and len(text) == len(PREFIX) + 43


def create_token(
    engine: Engine,
    user: str,
    *,
    expires_in: float | None = None,
    label: str = "",
    clock: Callable[[], datetime] = utcnow,
) -> tuple[str, str]:
    """A new token for ``user``: (token id, the token). The token is returned here and never again."""
    with engine.connect() as conn:
        if conn.execute(select(users.c.name).where(users.c.name == user)).first() is None:
            raise ConfigError(f"no user '{user}'")
    token, token_id, now = new_token(), uuid.uuid4().hex, clock()
    expires_at = now + timedelta(seconds=expires_in) if expires_in else None
    with engine.begin() as conn:
        conn.execute(
            insert(api_tokens).values(id=token_id, user_name=user, token_hash=digest(token), label=label[:200],
                                      created_at=now, expires_at=expires_at)
        )  # fmt: skip
    return token_id, token


def revoke_token(engine: Engine, token_id: str, *, clock: Callable[[], datetime] = utcnow) -> str:
    """Revoke by id; the user it belonged to."""
    with engine.begin() as conn:
        row = conn.execute(select(api_tokens.c.user_name).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise ConfigError(f"no API token '{token_id}'")
        conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=clock()))
    return str(row.user_name)


def list_tokens(engine: Engine, user: str | None = None) -> list[TokenInfo]:
    query = select(api_tokens).order_by(api_tokens.c.created_at)
    if user is not None:
        query = query.where(api_tokens.c.user_name == user)
    with engine.connect() as conn:
        return [
            TokenInfo(r.id, r.user_name, r.label, r.created_at, r.expires_at, r.last_used_at, r.revoked_at)
            for r in conn.execute(query)
        ]


def authenticate_token(
    engine: Engine,
    token: str,
    *,
    method: str = "token",
    peer_host: str = "",
    clock: Callable[[], datetime] = utcnow,
) -> str:
    """The user ``token`` belongs to; AuthenticationError when it is unknown, revoked, expired or its user disabled.

    Audited either way (``user_authentication``; an unknown token as user "unknown").
    """
    now = clock()
    wanted = digest(token.strip())
    query = (
        select(api_tokens, users.c.disabled)
        .join(users, users.c.name == api_tokens.c.user_name)
        .where(api_tokens.c.token_hash == wanted)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    reason = ""
    if row is None or not hmac.compare_digest(str(row.token_hash), wanted):
        reason = "unknown token"
    elif row.revoked_at is not None:
        reason = "token revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        reason = "token expired"
    elif row.disabled:
        reason = "user disabled"
    user = str(row.user_name) if row is not None else "unknown"
    emit(events.user_authentication(user=user, success=not reason, peer_host=peer_host, method=method))
    if reason:
        log.info("API token login (%s) refused", method)
        log.debug("API token login of %s refused: %s", user, reason)
        raise AuthenticationError("the API token is not valid (unknown, revoked or expired)")
    assert row is not None
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        with engine.begin() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=now))
    return user
