"""Users on the HTTP hub: ``Authorization: Bearer <API token>`` or ``Basic`` (user and password).

A consumer mounts its handler wrapped in :func:`authenticated`; a request
with credentials is checked before the handler runs, and the user becomes
:func:`auth_user` of the request, which the consumer puts on its exchange as
``auth-user`` (never taken from the request's own headers). Wrong credentials
are answered 401 with ``WWW-Authenticate`` at once: a request that says who it
is and is wrong is not served as anonymous. A request without credentials goes
on as anonymous; what it may do is the service's decision (:mod:`esb.authz`).
Until users exist in the database, credentials are not looked at.

Checking costs a database lookup (token) or ~0.1 s of argon2id (password), in
a worker thread. A verified credential is remembered for :data:`REMEMBER`
seconds (keyed by a salted hash, never the secret), so a viewer's hundred
requests are one login, audited once; a revoked token or changed password
takes effect on this node within that time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import secrets
import threading
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from esb.errors import AuthenticationError
from esb.security.users import UserDirectory

HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: seconds a verified credential is trusted without checking it again
REMEMBER = 30.0
#: where a request keeps the user its credentials proved
REQUEST_KEY = web.RequestKey("esb-auth-user", str)
CHALLENGE = 'Bearer realm="esb", Basic realm="esb", charset="UTF-8"'
_SALT = secrets.token_bytes(16)
_remembered: dict[str, tuple[str, float]] = {}
_lock = threading.Lock()


def auth_user(request: web.Request) -> str | None:
    """The user the request's credentials proved, or None (anonymous)."""
    return request.get(REQUEST_KEY)


def _key(users: UserDirectory, header: str) -> str:
    return hashlib.sha256(_SALT + str(id(users)).encode() + header.encode("utf-8", "replace")).hexdigest()


def _check(users: UserDirectory, header: str, peer_host: str) -> str:
    """The user of an Authorization header; AuthenticationError when it proves nobody (audited as a login)."""
    from esb.security.tokens import authenticate_token

    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return authenticate_token(users.engine, value, method="http-bearer", peer_host=peer_host)
    try:
        name, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        name, sep, password = "", "", ""
    if not sep or not name:
        raise AuthenticationError("the Basic credentials are not base64 of user:password")
    users.store.login(name, password, method="http-basic", peer_host=peer_host)
    return name


async def authenticate(request: web.Request, users: UserDirectory | None) -> web.Response | None:
    """Check the request's credentials: None to go on (``auth_user`` set when it had some), or the 401 answer."""
    header = request.headers.get("Authorization", "")
    scheme = header.strip().partition(" ")[0].lower()
    if scheme not in ("bearer", "basic") or users is None:
        return None
    if not await asyncio.to_thread(users.configured):
        return None
    key, now = _key(users, header), time.monotonic()
    with _lock:
        known = _remembered.get(key)
    if known is not None and known[1] > now:
        request[REQUEST_KEY] = known[0]
        return None
    try:
        name = await asyncio.to_thread(_check, users, header, request.remote or "")
    except AuthenticationError as exc:
        return web.json_response({"error": str(exc)}, status=401, headers={"WWW-Authenticate": CHALLENGE})
    with _lock:
        if len(_remembered) > 10_000:
            _remembered.clear()
        _remembered[key] = (name, now + REMEMBER)
    request[REQUEST_KEY] = name
    return None


def authenticated(handler: HttpHandler, users: Callable[[], UserDirectory | None]) -> HttpHandler:
    """``handler`` behind :func:`authenticate`; ``users`` is asked per request (the directory may come later)."""

    async def serve(request: web.Request) -> web.StreamResponse:
        refused = await authenticate(request, users())
        return refused if refused is not None else await handler(request)

    return serve


def forget() -> None:
    """Drop every remembered credential (tests; after an admin revoked tokens on this node)."""
    with _lock:
        _remembered.clear()
