"""The listening side: a SOAP request becomes an exchange, the route's outcome the SOAP answer.

Everything that can be refused is refused before the engine sees the message
(a Fault, nothing journaled, spooled parts removed): wrong media type, size
limits, hostile or broken XML, mustUnderstand, WS-Addressing problems, actions
the endpoint does not take, a plain request for an MTOM-only action, an
xop:Include naming no part. Then the route runs and its final message is the
response payload; a failure is a Fault naming the journal message id, never a
traceback. Faults follow the SOAP 1.2 HTTP binding (Sender 400, other 500;
SOAP 1.1 always 500), with 413/415/503 where HTTP has a better word.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from lxml import etree

from adapters.http.tls import allowed_peers, peer_subject
from adapters.soap import wsdl
from adapters.soap.envelope import (
    ANONYMOUS,
    NONE_ADDRESS,
    PARSER,
    UNDERSTOOD,
    XOP,
    Envelope,
    fault,
    fault_status,
    parse_envelope,
    response,
)
from adapters.soap.mtom import (
    OutgoingPackage,
    Package,
    TooLargeError,
    bare_content_id,
    content_type_params,
    package,
    read_package,
)
from adapters.soap.options import SoapOptions
from adapters.soap.wssecurity import SECURITY, Verified, WsSecurityPolicy
from esb.components import Consumer, Handler, Outcome
from esb.errors import SoapFaultError, WsSecurityError
from esb.exchange import ATTACHMENTS_HEADER, Attachment, Exchange, attachments_header
from esb.http.auth import auth_user, authenticated
from esb.http.hub import HttpHub, peer_identity
from esb.security.peers import with_identity
from esb.security.users import UserDirectory

log = logging.getLogger("esb.adapters.soap")

#: media type -> SOAP version (SOAP 1.2 HTTP binding; SOAP 1.1 / WS-I Basic Profile)
SOAP_MEDIA_TYPES = {"application/soap+xml": "1.2", "text/xml": "1.1"}
#: seconds a caller should wait when the journal could not take its message
RETRY_AFTER = 5
READ_CHUNK = 256 * 1024


class MediaTypeError(SoapFaultError):
    """Not a SOAP media type: answered 415."""


@dataclass
class Inbound:
    """What is known of a request so far; a Fault uses its version and MessageID."""

    version: str
    mtom: bool = False
    action: str = ""
    message_id: str = ""
    package: Package | None = None
    attachments: list[Attachment] = field(default_factory=list)
    #: what WS-Security proved (None: the endpoint does not check it)
    verified: Verified | None = None


def _soap_fault_in(error: BaseException | None) -> SoapFaultError | None:
    """A SoapFaultError raised by a route step, possibly wrapped by the step that called it."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, SoapFaultError):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


def _transport_action(request: web.Request, version: str, root_type: str) -> str:
    """The action named outside the envelope: the action parameter (1.2) or SOAPAction (1.1)."""
    if version == "1.1":
        return request.headers.get("SOAPAction", "").strip().strip('"')
    for content_type in (request.headers.get("Content-Type", ""), root_type):
        params = content_type_params(content_type)[1] if content_type else {}
        if params.get("action"):
            return params["action"]
        inner = params.get("type", "") or params.get("start-info", "")
        if "action=" in inner:
            return content_type_params(inner)[1].get("action", "")
    return ""


def _not_allowed() -> web.Response:
    return web.Response(status=405, text="SOAP endpoints take POST (and GET ?wsdl)\n", headers={"Allow": "POST, GET"})


def _identity(http_user: str | None, verified: Verified | None) -> dict[str, str]:
    """``auth-user`` (and the WS-Security signer): the HTTP credentials' user, else the Security header's;
    HTTP credentials and a UsernameToken must not name two different users."""
    found = verified.headers() if verified is not None else {}
    wss_user = verified.user if verified is not None else None
    if http_user and wss_user and http_user != wss_user:
        raise WsSecurityError(
            "the HTTP credentials and the UsernameToken name different users", fault="FailedAuthentication"
        )
    if http_user:
        found["auth-user"] = http_user
    return found


def _soap_media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


class SoapConsumer(Consumer):
    def __init__(
        self,
        hub: HttpHub,
        options: SoapOptions,
        handler: Handler,
        route_id: str,
        spool_dir: Path,
        ssl_context: ssl.SSLContext | None = None,
        *,
        users: Callable[[], UserDirectory | None] = lambda: None,
        security: WsSecurityPolicy | None = None,
    ) -> None:
        self.hub, self.options, self.handler, self.route_id = hub, options, handler, route_id
        self.spool_dir = spool_dir
        self.ssl_context = ssl_context
        #: the engine's users (HTTP Bearer/Basic, esb.http.auth) and the WS-Security checks
        self.users, self.security = users, security

    async def start(self) -> None:
        o = self.options
        serve = authenticated(self.serve, self.users)
        self.hub.mount(o.host, o.port, o.path, serve, ssl_context=self.ssl_context, peers=allowed_peers(o),
                       refusal=self.refused)  # fmt: skip

    async def stop(self) -> None:
        self.hub.unmount(self.options.host, self.options.port, self.options.path)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            return await self.describe(request)
        if request.method != "POST":
            return _not_allowed()
        inbound = Inbound(version="1.1" if request.content_type == "text/xml" else "1.2")
        try:
            exchange = await self.receive(request, inbound)
        except SoapFaultError as exc:
            self._discard(inbound)
            return self.fault_response(exc, inbound)
        except OSError as exc:  # a spool file could not be written, or the caller went away
            self._discard(inbound)
            log.error("route %s: SOAP request from %s not received: %s", self.route_id, request.remote, exc)
            failed = SoapFaultError("the request could not be received; try again later", code="Receiver")
            return self.fault_response(failed, inbound, status=503, headers={"Retry-After": str(RETRY_AFTER)})
        except BaseException:
            self._discard(inbound)
            raise
        log.debug("route %s: SOAP %s action %s from %s (%d bytes, %d parts)", self.route_id, inbound.version,
                  inbound.action, request.remote, len(exchange.body), len(exchange.attachments))  # fmt: skip
        outcome = await self.handler(exchange, True)
        return await self.answer(request, inbound, outcome)

    # -- request -------------------------------------------------------------------

    @staticmethod
    def _discard(inbound: Inbound) -> None:
        if inbound.package is not None:
            inbound.package.discard()

    async def receive(self, request: web.Request, inbound: Inbound) -> Exchange:
        o = self.options
        if request.content_length is not None and request.content_length > o.max_body:
            raise TooLargeError(f"the message is larger than the {o.max_body} bytes accepted here")
        media_type = request.content_type
        root_type = ""
        if media_type == "multipart/related":
            inbound.mtom = True
            inbound.package = await read_package(
                request.content.iter_chunked(READ_CHUNK),
                request.headers.get("Content-Type", ""),
                spool_dir=self.spool_dir,
                max_xml=o.max_xml,
                max_body=o.max_body,
            )
            root, root_type = inbound.package.root, inbound.package.root_type
            inbound.attachments = inbound.package.attachments
            soap_media = _soap_media_type(content_type_params(root_type)[1].get("type", ""))
        elif media_type in SOAP_MEDIA_TYPES:
            root = await self._read_plain(request, min(o.max_xml, o.max_body))
            soap_media = media_type
        else:
            raise MediaTypeError(
                f"content type '{media_type or 'none'}' is not SOAP (application/soap+xml, text/xml, "
                'or MTOM: multipart/related; type="application/xop+xml")'
            )
        understood = UNDERSTOOD | {SECURITY} if self.security is not None and self.security.understood else UNDERSTOOD
        envelope = parse_envelope(root, max_size=o.max_xml, max_depth=o.max_depth, understood=understood)
        inbound.version = envelope.version
        if self.security is not None and self.security.understood:
            inbound.verified = await asyncio.to_thread(self.security.check, envelope, peer_host=request.remote or "")
        inbound.message_id = envelope.addressing.get("MessageID", "")
        if soap_media in SOAP_MEDIA_TYPES and SOAP_MEDIA_TYPES[soap_media] != envelope.version:
            raise SoapFaultError(
                f"content type {soap_media} is for SOAP {SOAP_MEDIA_TYPES[soap_media]}, "
                f"but the envelope is SOAP {envelope.version}"
            )
        inbound.action = self._action(request, envelope, root_type)
        self._check_addressing(envelope, inbound)
        payload = envelope.payload
        self._check_includes(envelope, inbound)
        return self._exchange(request, envelope, inbound, payload)

    async def _read_plain(self, request: web.Request, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise TooLargeError(f"the SOAP envelope is larger than the {limit} bytes accepted here")
            chunks.append(chunk)
        return b"".join(chunks)

    def _action(self, request: web.Request, envelope: Envelope, root_type: str) -> str:
        addressed = envelope.addressing.get("Action", "")
        transported = _transport_action(request, envelope.version, root_type)
        if addressed and transported and addressed != transported:
            raise SoapFaultError(
                f"wsa:Action '{addressed}' does not match the HTTP action '{transported}'", subcode="a:ActionMismatch"
            )
        return addressed or transported

    def _check_addressing(self, envelope: Envelope, inbound: Inbound) -> None:
        o = self.options
        reply_to = envelope.addressing.get("ReplyTo", "")
        if reply_to not in ("", ANONYMOUS, NONE_ADDRESS):
            raise SoapFaultError(
                f"wsa:ReplyTo must be {ANONYMOUS}: replies go back on the same HTTP connection",
                subcode="a:OnlyAnonymousAddressSupported",
            )
        action = inbound.action
        if o.actions and action not in o.actions:
            raise SoapFaultError(
                f"action '{action or '(none)'}' is not supported here (supported: {', '.join(o.actions)})",
                subcode="a:ActionNotSupported",
            )
        if action in o.mtom_actions and not inbound.mtom:
            raise SoapFaultError(
                f"action '{action}' must be sent MTOM/XOP-packaged "
                '(Content-Type: multipart/related; type="application/xop+xml"); this request is plain SOAP'
            )

    def _check_includes(self, envelope: Envelope, inbound: Inbound) -> None:
        known = {a.content_id for a in inbound.attachments}
        for include in envelope.body.iter(f"{{{XOP}}}Include"):
            href = include.get("href", "")
            if not inbound.mtom:
                raise SoapFaultError("the message has an xop:Include but is not MTOM (multipart/related)")
            if not href.lower().startswith("cid:") or bare_content_id(href) not in known:
                raise SoapFaultError(f"xop:Include href '{href}' names no MIME part of this message")

    def _exchange(self, request: web.Request, envelope: Envelope, inbound: Inbound, payload: Any) -> Exchange:
        headers = {
            "content-type": "application/xml",
            "soap-version": envelope.version,
            "soap-action": inbound.action,
            "soap-mtom": "true" if inbound.mtom else "false",
            "http-path": request.path,
            "http-remote": request.remote or "",
        }
        for name, header in (("MessageID", "soap-message-id"), ("To", "soap-to"), ("ReplyTo", "soap-reply-to")):
            if envelope.addressing.get(name):
                headers[header] = envelope.addressing[name]
        if inbound.attachments:
            headers[ATTACHMENTS_HEADER] = attachments_header(inbound.attachments)
        headers.update(_identity(auth_user(request), inbound.verified))
        if request.transport is not None:
            subject = peer_subject(request.transport.get_extra_info("peercert"))
            if subject:
                headers["http-tls-subject"] = subject
        with_identity(headers, peer_identity(request))
        body = etree.tostring(payload, xml_declaration=False, encoding="utf-8")
        return Exchange(body=body, headers=headers, attachments=list(inbound.attachments))

    # -- answer --------------------------------------------------------------------

    def refused(self, request: web.Request, reason: str) -> web.StreamResponse:
        """A caller refused by its client certificate (``peers``): a Sender Fault with HTTP 403."""
        inbound = Inbound(version="1.1" if request.content_type == "text/xml" else "1.2")
        return self.fault_response(SoapFaultError(f"client certificate refused: {reason}"), inbound, status=403)

    def fault_response(
        self,
        error: SoapFaultError,
        inbound: Inbound,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        if isinstance(error, TooLargeError):
            status = 413
        elif isinstance(error, MediaTypeError):
            status = 415
        status = status or fault_status(error, inbound.version)
        log.info("route %s: SOAP Fault %s (HTTP %d)", self.route_id, error.subcode or error.code, status)
        log.debug("route %s: SOAP Fault reason: %s", self.route_id, error.reason)
        media = "application/soap+xml" if inbound.version == "1.2" else "text/xml"
        answer = web.Response(
            status=status,
            body=fault(error, version=inbound.version, relates_to=inbound.message_id),
            headers={**(headers or {}), "Content-Type": f"{media}; charset=utf-8"},
        )
        if status == 413:
            answer.force_close()  # do not read the rest of a body we refuse
        return answer

    async def answer(self, request: web.Request, inbound: Inbound, outcome: Outcome) -> web.StreamResponse:
        if outcome.message_id is None:  # not journaled: nothing refers to the spooled parts
            self._discard(inbound)
            busy = SoapFaultError("the message could not be stored; try again later", code="Receiver")
            return self.fault_response(busy, inbound, status=503, headers={"Retry-After": str(RETRY_AFTER)})
        headers = {"X-Message-Id": outcome.message_id}
        if outcome.status == "failed":
            error = _soap_fault_in(outcome.error) or SoapFaultError(
                f"the request could not be processed ({type(outcome.error).__name__}); "
                f"the engine kept it as message {outcome.message_id}",
                code="Receiver",
            )
            return self.fault_response(error, inbound, headers=headers)
        final = outcome.exchange
        if outcome.status != "processed" or final is None or not final.body.strip():
            return web.Response(status=202, headers=headers)  # one-way: nothing to answer
        try:
            payload = etree.fromstring(final.body, PARSER)
            action = final.headers.get("soap-reply-action") or (f"{inbound.action}Response" if inbound.action else "")
            data = response(payload, version=inbound.version, action=action, relates_to=inbound.message_id)
            if not final.attachments and not inbound.mtom:
                media = "application/soap+xml" if inbound.version == "1.2" else "text/xml"
                headers["Content-Type"] = f"{media}; charset=utf-8"
                return web.Response(status=200, body=data, headers=headers)
            outgoing = package(data, final.attachments, version=inbound.version, action=action)
        except (etree.XMLSyntaxError, ValueError, OSError) as exc:
            log.error("route %s: message %s: reply cannot be sent as SOAP: %s", self.route_id, outcome.message_id,
                      type(exc).__name__)  # fmt: skip
            broken = SoapFaultError(f"the reply to message {outcome.message_id} could not be built", code="Receiver")
            return self.fault_response(broken, inbound, headers=headers)
        return await self._stream(request, outgoing, headers)

    async def _stream(
        self, request: web.Request, outgoing: OutgoingPackage, headers: dict[str, str]
    ) -> web.StreamResponse:
        """MTOM out, file-backed parts read from disk piece by piece."""
        answer = web.StreamResponse(status=200, headers={**headers, "Content-Type": outgoing.content_type})
        answer.content_length = outgoing.length
        await answer.prepare(request)
        try:
            async for chunk in outgoing.chunks():
                await answer.write(chunk)
        except OSError as exc:
            # Headers are gone already: all we can do is cut the connection short.
            log.error("route %s: MTOM reply broken off: %s", self.route_id, exc)
            if request.transport is not None:
                request.transport.close()
            return answer
        await answer.write_eof()
        return answer

    # -- WSDL ----------------------------------------------------------------------

    async def describe(self, request: web.Request) -> web.StreamResponse:
        """GET PATH?wsdl and PATH?xsd=...: the WSDL and its schemas, addressed to this URL."""
        query = {k.lower(): v for k, v in request.query.items()}
        if "wsdl" not in query and "xsd" not in query:
            return _not_allowed()
        wsdl_path = self.options.wsdl_path
        if wsdl_path is None or not wsdl_path.is_file():
            return web.Response(status=404, text=f"no WSDL is published at {request.path}\n")
        path = wsdl_path if "wsdl" in query else wsdl.resolve_key(query["xsd"])
        if path is None:
            return web.Response(status=404, text=f"no schema '{query['xsd']}' is published here\n")
        endpoint = f"{request.scheme}://{request.host}{request.path}"
        data = await asyncio.to_thread(wsdl.document, path, endpoint)
        return web.Response(body=data, headers={"Content-Type": "text/xml; charset=utf-8"})
