"""The listening side: an HTTP request becomes an exchange, the outcome becomes the response.

Over TLS the hub has already checked the client certificate against the
route's ``peers``; the exchange carries the certificate as ``tls-peer-subject``
and ``tls-peer-fingerprint`` (never taken from the request's own headers).
Requests are refused (405, 415, 413) before anything is journaled; once the
engine has the message, every answer carries its id (``X-Message-Id``), so a
caller that got a 500 can still point an admin at what we kept.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from adapters.http.options import HttpOptions
from adapters.http.tls import allowed_peers, peer_subject
from esb.components import Consumer, Handler, Outcome
from esb.exchange import Exchange
from esb.http.auth import auth_user, authenticated
from esb.http.hub import HttpHub, peer_identity
from esb.security.peers import TLS_HEADERS, with_identity
from esb.security.users import UserDirectory

log = logging.getLogger("esb.adapters.http")

#: credentials must not reach the journal, where every admin can read them
DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
#: seconds a caller should wait when the journal could not take its message
RETRY_AFTER = 5
_CHUNK = 64 * 1024


def _error(status: int, text: str, **extra: str) -> web.Response:
    return web.json_response({"error": text}, status=status, headers=extra or None)


def _media_type_allowed(media_type: str, allowed: tuple[str, ...]) -> bool:
    kind = media_type.split("/", 1)[0]
    return any(a.lower() in (media_type, f"{kind}/*", "*/*") for a in allowed)


def request_headers(request: web.Request) -> dict[str, str]:
    """The exchange headers for a request: method, path, query, caller, and its HTTP headers."""
    headers = {
        "http-method": request.method,
        "http-path": request.path,
        "http-query": request.query_string,
        "http-remote": request.remote or "",
    }
    if "Content-Type" in request.headers:
        headers["content-type"] = request.headers["Content-Type"]
    if request.charset:
        headers["charset"] = request.charset
    for name in {n.lower() for n in request.headers}:
        if name not in DROPPED_HEADERS and name not in TLS_HEADERS:
            headers[f"http-header-{name}"] = ", ".join(request.headers.getall(name))
    if request.transport is not None:
        subject = peer_subject(request.transport.get_extra_info("peercert"))
        if subject:
            headers["http-tls-subject"] = subject
    with_identity(headers, peer_identity(request))
    user = auth_user(request)
    if user:  # proved by credentials on this request (esb.http.auth), never taken from a header
        headers["auth-user"] = user
    return headers


def _reply_status(outcome: Outcome, route_id: str) -> int | None:
    """An HTTP status chosen by the route (``reply: {status: "422"}``), if any and valid."""
    value = outcome.reply.get("status")
    if value is None:
        return None
    try:
        status = int(value)
    except (TypeError, ValueError):
        status = 0
    if not 100 <= status <= 599:
        log.warning("route %s: reply status '%s' is not an HTTP status (100-599); using the default", route_id, value)
        return None
    return status


def response(outcome: Outcome, route_id: str) -> web.Response:
    """The HTTP answer for the engine's outcome."""
    message_id = outcome.message_id
    if message_id is None:
        return _error(503, "the message could not be stored; try again later", **{"Retry-After": str(RETRY_AFTER)})
    headers = {"X-Message-Id": message_id}
    chosen = _reply_status(outcome, route_id)
    if outcome.status == "accepted":
        return web.json_response({"message_id": message_id}, status=chosen or 202, headers=headers)
    if outcome.status == "failed":
        name = type(outcome.error).__name__ if outcome.error is not None else "Error"
        return web.json_response({"error": name, "message_id": message_id}, status=chosen or 500, headers=headers)
    if outcome.status == "filtered":
        return web.Response(status=chosen or 204, headers=headers)
    status = chosen or 200
    final = outcome.exchange
    if final is None or status in (204, 304):
        return web.Response(status=status, headers=headers)
    headers["Content-Type"] = final.headers.get("content-type") or "application/octet-stream"
    return web.Response(status=status, body=final.body, headers=headers)


class HttpConsumer(Consumer):
    def __init__(
        self,
        hub: HttpHub,
        options: HttpOptions,
        handler: Handler,
        route_id: str,
        ssl_context: ssl.SSLContext | None = None,
        users: Callable[[], UserDirectory | None] = lambda: None,
    ) -> None:
        self.hub, self.options, self.handler, self.route_id = hub, options, handler, route_id
        self.ssl_context = ssl_context
        self.users = users

    async def start(self) -> None:
        o = self.options
        serve = authenticated(self.serve, self.users)
        self.hub.mount(o.host, o.port, o.path, serve, prefix=o.prefix, ssl_context=self.ssl_context,
                       peers=allowed_peers(o))  # fmt: skip

    async def stop(self) -> None:
        self.hub.unmount(self.options.host, self.options.port, self.options.path)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        refused = self.refuse(request)
        if refused is not None:
            return refused
        body = await self.read_body(request)
        if body is None:
            too_large = _error(413, f"request body is larger than the {self.options.max_body} bytes accepted here")
            too_large.force_close()  # do not read the rest of a body we refuse
            return too_large
        exchange = Exchange(body=body, headers=request_headers(request))
        log.debug("route %s: %s %s from %s (%d bytes)", self.route_id, request.method, request.path,
                  request.remote, len(body))  # fmt: skip
        outcome = await self.handler(exchange, self.options.reply == "route")
        return response(outcome, self.route_id)

    def refuse(self, request: web.Request) -> web.Response | None:
        """405 or 415 for requests this endpoint does not take."""
        o = self.options
        if request.method not in o.methods:
            allowed = ", ".join(o.methods)
            return _error(405, f"method {request.method} is not allowed here (allowed: {allowed})", Allow=allowed)
        if o.content_types:
            given = request.headers.get("Content-Type")
            media_type = request.content_type.lower() if given else ""
            if not _media_type_allowed(media_type, o.content_types):
                shown = media_type or "none"
                return _error(
                    415, f"content type '{shown}' is not accepted here (allowed: {', '.join(o.content_types)})"
                )
        return None

    async def read_body(self, request: web.Request) -> bytes | None:
        """The whole body, or None as soon as it is over ``max_body`` (declared or streamed)."""
        limit = self.options.max_body
        if request.content_length is not None and request.content_length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
