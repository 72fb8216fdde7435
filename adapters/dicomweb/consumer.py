"""The DICOMweb service on the HTTP hub: one handler for every path below the base, routed here.

GETs (QIDO-RS, WADO-RS, WADO-URI) are answered from the archive directly: a
query or a read is not a message and is not journaled. POSTs (STOW-RS) go
through the route, one exchange per instance (see :mod:`.stow`). CORS is
answered here too, since a browser viewer on another origin preflights
every request that carries an Accept with parameters.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from aiohttp import web
from pydicom.dataset import Dataset

from adapters.dicomweb import accept as acc
from adapters.dicomweb import qido, wado
from adapters.dicomweb.frames import FrameError
from adapters.dicomweb.options import DicomWebOptions
from adapters.dicomweb.render import RENDERED_TYPES, RenderError, render, rendering
from adapters.dicomweb.responses import DICOM_JSON, Call, HttpError, dicom_json, error
from adapters.dicomweb.stow import StowRequest
from adapters.dicomweb.wadouri import wado_uri
from esb.authz import Caller, authorize_caller, directory_of
from esb.components import Consumer, Handler
from esb.errors import DicomError, PermissionDeniedError
from esb.http.auth import CHALLENGE, auth_user, authenticated
from esb.http.hub import HttpHub, peer_identity
from profiles.dicom import audit
from profiles.dicom.api import ArchiveApi, InstanceRef, Level

log = logging.getLogger("esb.adapters.dicomweb")

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
METHODS = "GET, HEAD, POST, OPTIONS"
EXPOSED = "Content-Type, Content-Length, Content-Location, Warning"
#: instances tried for a study or series thumbnail before giving up (SR, KOS and the like have no pixels)
THUMBNAIL_TRIES = 5
_LEVEL_NAMES = {"STUDY": "study", "SERIES": "series", "IMAGE": "instance"}
_QUERY_LEVELS: dict[str, Level] = {"studies": "STUDY", "series": "SERIES", "instances": "IMAGE"}
#: the archive's ``scope`` keyword for the request being served (set by ``authorize``, per request task)
_SCOPE: ContextVar[dict[str, Any] | None] = ContextVar("dicomweb_scope", default=None)


def _uid(text: str) -> str:
    if len(text) > 64 or not _UID.match(text):
        raise HttpError(400, f"'{text[:80]}' is not a DICOM UID")
    return text


def _is_query(steps: list[str]) -> bool:
    """QIDO-RS paths (``/studies``, ``/studies/{uid}/series``...) as opposed to WADO ones."""
    return bool(steps) and steps[-1] in _QUERY_LEVELS


def _frame_numbers(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise HttpError(400, f"'{text[:80]}' is not a list of frame numbers (e.g. 1 or 1,3,5)")
    return [int(p) for p in parts]


class DicomWebConsumer(Consumer):
    def __init__(
        self,
        hub: HttpHub,
        options: DicomWebOptions,
        handler: Handler,
        route_id: str,
        archive: Callable[[], ArchiveApi],
        spool_dir: Path,
        ae_title: str = "",
    ) -> None:
        self.hub, self.options, self.handler, self.route_id = hub, options, handler, route_id
        #: the engine's AE title: the called AE of STOW-RS exchanges, as of C-STORE ones
        self.archive, self.spool_dir, self.ae_title = archive, spool_dir, ae_title
        self.mount_path = "/" + options.path.strip("/") if options.path.strip("/") else ""

    async def start(self) -> None:
        o = self.options
        serve = authenticated(self.serve, lambda: directory_of(self.archive()))
        self.hub.mount(o.host, o.port, o.path, serve, prefix=True)

    async def stop(self) -> None:
        self.hub.unmount(self.options.host, self.options.port, self.options.path)

    # -- the request ----------------------------------------------------------------

    def cors(self, request: web.Request) -> dict[str, str]:
        allowed = self.options.cors
        origin = request.headers.get("Origin", "").rstrip("/")
        if not allowed:
            return {}
        headers = {} if "*" in allowed else {"Vary": "Origin"}
        if origin and ("*" in allowed or origin in allowed):
            headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
            headers["Access-Control-Expose-Headers"] = EXPOSED
        return headers

    def base(self, request: web.Request) -> str:
        if self.options.base_url:
            return self.options.base_url.rstrip("/")
        return f"{request.scheme}://{request.host}{self.mount_path}"

    async def serve(self, request: web.Request) -> web.StreamResponse:
        call = Call(request, self.base(request), self.cors(request))
        try:
            if request.method == "OPTIONS":
                return self.options_answer(call)
            steps = [s for s in request.path[len(self.mount_path) :].split("/") if s]
            _SCOPE.set(None)  # a kept-alive connection serves its requests in one task: start afresh
            if request.method in ("GET", "HEAD"):
                await self.authorize(call, steps)
            return await self.route(call, steps)
        except HttpError as exc:
            return error(call, exc.status, exc.text, exc.headers)
        except DicomError as exc:
            status = 503 if exc.status >> 8 == 0xA7 else 500
            log.warning("%s %s: the archive refused: %s", request.method, request.path, exc.text)
            return error(call, status, f"the archive refused: {exc.text}")
        except ConnectionError:
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error(call, 500, "the request failed; the engine's log has the details")

    async def authorize(self, call: Call, steps: list[str]) -> None:
        """dicom.query (QIDO-RS) or dicom.retrieve (WADO) for the caller (:mod:`esb.authz`): HttpError 401
        (anonymous) or 403 when refused; a scoped grant limits this request's studies (``_SCOPE``)."""
        permission = "dicom.query" if _is_query(steps) else "dicom.retrieve"
        request = call.request
        identity = peer_identity(request)
        caller = Caller(
            user=auth_user(request), tls_subject=identity.subject if identity else None,
            tls_fingerprint=identity.fingerprint if identity else None, peer_host=request.remote or "",
        )  # fmt: skip
        archive = self.archive()
        try:
            granted = await asyncio.to_thread(authorize_caller, caller, permission, directory_of(archive))
        except PermissionDeniedError as exc:
            if caller.user is None:
                raise HttpError(401, f"access denied: {exc}", {"WWW-Authenticate": CHALLENGE}) from None
            raise HttpError(403, f"access denied: {exc}") from None
        _SCOPE.set({} if granted.scopes is None else {"scope": granted.scopes})

    def options_answer(self, call: Call) -> web.Response:
        """A CORS preflight (Access-Control-Request-Method) or a plain OPTIONS."""
        request = call.request
        if "Access-Control-Request-Method" not in request.headers:
            return web.Response(status=204, headers={**call.headers, "Allow": METHODS})
        if "Access-Control-Allow-Origin" not in call.headers:
            return error(call, 403, "this origin may not call the DICOMweb service (option cors)")
        headers = {**call.headers, "Access-Control-Allow-Methods": METHODS, "Access-Control-Max-Age": "600"}
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:
            headers["Access-Control-Allow-Headers"] = asked
        return web.Response(status=204, headers=headers)

    async def route(self, call: Call, steps: list[str]) -> web.StreamResponse:
        method = call.request.method
        if method == "POST":
            match steps:
                case ["studies"]:
                    return await self.stow(call, None)
                case ["studies", study]:
                    return await self.stow(call, _uid(study))
            raise HttpError(405, "only /studies and /studies/{study} take POST (STOW-RS)", {"Allow": "GET, HEAD"})
        if method not in ("GET", "HEAD"):
            raise HttpError(405, f"method {method} is not served here", {"Allow": METHODS})
        match steps:
            case ["studies"] | ["series"] | ["instances"]:
                return await self.query(call, _QUERY_LEVELS[steps[0]], {})
            case ["wado"]:
                return await wado_uri(call, self.archive(), self.select)
            case ["studies", study, "series"]:
                return await self.query(call, "SERIES", {qido.STUDY_UID: _uid(study)})
            case ["studies", study, "instances"]:
                return await self.query(call, "IMAGE", {qido.STUDY_UID: _uid(study)})
            case ["studies", study, "series", series, "instances"]:
                return await self.query(call, "IMAGE", {qido.STUDY_UID: _uid(study), qido.SERIES_UID: _uid(series)})
            case ["studies", study, *rest] if len(rest) <= 1:
                return await self.resource(call, "STUDY", study, None, None, rest)
            case ["studies", study, "series", series, *rest] if len(rest) <= 1:
                return await self.resource(call, "SERIES", study, series, None, rest)
            case ["studies", study, "series", series, "instances", instance, *rest]:
                return await self.resource(call, "IMAGE", study, series, instance, rest)
        raise HttpError(404, f"nothing is served at {call.request.path}")

    # -- QIDO-RS ----------------------------------------------------------------------

    async def query(self, call: Call, level: Level, fixed: dict[int, str]) -> web.Response:
        if not acc.accepts(acc.parse_accept(call.request.headers.get("Accept")), DICOM_JSON, "application/json"):
            raise wado.not_acceptable("query results (application/dicom+json)")
        try:
            query = qido.build_query(level, call.request.query, fixed)
        except qido.QueryError as exc:
            raise HttpError(400, str(exc)) from None
        archive = self.archive()

        def run() -> tuple[list[dict[str, object]], bool]:
            return qido.results(query, qido.find(archive, query, _SCOPE.get()), call.base)

        try:
            found, more = await asyncio.to_thread(run)
        except DicomError as exc:
            if exc.status >> 8 == 0xA7:  # out of resources: the index is down or busy (503 below)
                raise
            raise HttpError(400, f"the query cannot be answered: {exc.text}") from None
        audit.qido(call.request, call.base, True)
        warnings = []
        if more:
            warnings.append(f'299 {call.request.host}: "There are additional results that can be requested"')
        if query.fuzzy:
            warnings.append(
                f'299 {call.request.host}: "The fuzzymatching parameter is not supported. '
                'Only literal matching has been performed."'
            )
        headers = {"Warning": ", ".join(warnings)} if warnings else {}
        if not found:
            return web.Response(status=204, headers={**call.headers, **headers})
        return dicom_json(call, found, headers=headers)

    # -- WADO-RS ----------------------------------------------------------------------

    async def select(self, level: Level, study: str, series: str | None, instance: str | None) -> list[InstanceRef]:
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        ds.StudyInstanceUID = _uid(study)
        if series is not None:
            ds.SeriesInstanceUID = _uid(series)
        if instance is not None:
            ds.SOPInstanceUID = _uid(instance)
        archive = self.archive()
        refs = await asyncio.to_thread(archive.select, level, ds, **(_SCOPE.get() or {}))
        if not refs:
            raise HttpError(404, f"no such {_LEVEL_NAMES[level]} in the archive")
        return refs

    async def resource(
        self, call: Call, level: Level, study: str, series: str | None, instance: str | None, rest: list[str]
    ) -> web.StreamResponse:
        refs = await self.select(level, study, series, instance)
        archive = self.archive()
        await asyncio.to_thread(audit.wado, call.request, call.base, archive, refs)
        match rest:
            case []:
                return await wado.retrieve(call, archive, refs, single=level == "IMAGE")
            case ["metadata"]:
                return await wado.metadata(call, archive, refs, self.options.bulk_threshold)
            case ["rendered"] if level == "IMAGE":
                return await self.rendered(call, refs, 1, thumbnail=False)
            case ["thumbnail"]:
                return await self.rendered(call, refs, 1, thumbnail=True)
            case ["frames", numbers] if level == "IMAGE":
                return await wado.frames(call, archive, refs[0], _frame_numbers(numbers))
            case ["frames", numbers, "rendered" | "thumbnail" as kind] if level == "IMAGE":
                wanted = _frame_numbers(numbers)
                if len(wanted) != 1:
                    raise HttpError(400, f"{kind} takes one frame number")
                return await self.rendered(call, refs, wanted[0], thumbnail=kind == "thumbnail")
            case ["bulkdata", *path] if level == "IMAGE" and path:
                return await wado.bulkdata(call, archive, refs[0], wado.parse_bulk_path("/".join(path)))
        raise HttpError(404, f"nothing is served at {call.request.path}")

    async def rendered(self, call: Call, refs: list[InstanceRef], frame: int, *, thumbnail: bool) -> web.Response:
        """An instance's frame as an image; for a study or series, its middle instance that has pixels."""
        media_type = acc.first_accepted(acc.parse_accept(call.request.headers.get("Accept")), RENDERED_TYPES)
        if media_type is None:
            raise wado.not_acceptable(f"a rendered image ({', '.join(RENDERED_TYPES)})")
        try:
            how = rendering(call.request.query, media_type)
        except RenderError as exc:
            raise HttpError(400, str(exc)) from None
        if thumbnail and how.viewport is None:
            side = self.options.thumbnail_size
            how = type(how)(media_type, how.window, (side, side), how.region, how.quality)
        middle = len(refs) // 2
        order = sorted(range(len(refs)), key=lambda i: abs(i - middle))[:THUMBNAIL_TRIES]
        candidates = [refs[i] for i in order]
        archive = self.archive()

        def run(ref: InstanceRef) -> bytes:
            with archive.open(ref) as fp:
                return render(fp, frame, how)

        problem: FrameError | None = None
        for ref in candidates:
            try:
                image = await asyncio.to_thread(run, ref)
            except FrameError as exc:
                problem = exc
                continue
            return web.Response(body=image, content_type=media_type, headers=call.headers)
        raise HttpError(404, f"nothing to render: {problem}")

    # -- STOW-RS ----------------------------------------------------------------------

    async def stow(self, call: Call, study: str | None) -> web.Response:
        if not acc.accepts(acc.parse_accept(call.request.headers.get("Accept")), DICOM_JSON, "application/json"):
            raise wado.not_acceptable("the store response (application/dicom+json)")
        return await StowRequest(call, self.options, self.handler, self.spool_dir, study, self.ae_title).run()
