"""WADO-URI (PS3.18 9): ``GET /wado?requestType=WADO&studyUID=&seriesUID=&objectUID=&contentType=``.

The older single-object form, still what many PACS and XDS-I consumers send
(RAD-55). ``contentType`` is a comma list in preference order; without it an
image comes as image/jpeg (PS3.18 9.4.1.3: the default for single-frame
images). ``application/dicom`` streams the Part 10 file, re-encoded only when
``transferSyntax`` asks for Explicit VR Little Endian and the file is stored
otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from adapters.dicomweb import accept as acc
from adapters.dicomweb.frames import FrameError
from adapters.dicomweb.render import RENDERED_TYPES, RenderError, Rendering, render
from adapters.dicomweb.responses import Call, HttpError, cut
from adapters.dicomweb.transcode import can_transcode, to_explicit_little
from adapters.dicomweb.wado import CHUNK, DICOM
from profiles.dicom import audit
from profiles.dicom.api import ArchiveApi, InstanceRef, Level

UID_PARAMS = ("studyUID", "seriesUID", "objectUID")


def _positive(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise HttpError(400, f"WADO-URI: '{name}' must be a whole number from 1 (got '{text}')")
    return int(text)


def _rendering(params: Mapping[str, str], media_type: str) -> Rendering:
    window = None
    if "windowCenter" in params or "windowWidth" in params:
        try:
            center, width = float(params["windowCenter"]), float(params["windowWidth"])
        except (KeyError, ValueError):
            raise HttpError(400, "WADO-URI: windowCenter and windowWidth go together, as numbers") from None
        if width < 1:
            raise HttpError(400, "WADO-URI: windowWidth must be at least 1")
        window = (center, width, "linear")
    rows, columns = _positive(params, "rows"), _positive(params, "columns")
    viewport = (columns or rows or 0, rows or columns or 0) if rows or columns else None
    quality = _positive(params, "imageQuality") or 90
    if quality > 100:
        raise HttpError(400, f"WADO-URI: 'imageQuality' is 1 to 100 (got {quality})")
    return Rendering(media_type, window, viewport, None, quality)


def check(params: Mapping[str, str]) -> tuple[str, str, str]:
    """The three UIDs of a valid request; HttpError 400 for anything PS3.18 9.4 does not allow."""
    if params.get("requestType") != "WADO":
        raise HttpError(400, "WADO-URI: requestType must be WADO")
    missing = [name for name in UID_PARAMS if not params.get(name)]
    if missing:
        raise HttpError(400, f"WADO-URI: {', '.join(missing)} missing (studyUID, seriesUID and objectUID are required)")
    if params.get("anonymize", "").lower() == "yes":
        raise HttpError(400, "WADO-URI: anonymize=yes is not supported by this server")
    return params["studyUID"], params["seriesUID"], params["objectUID"]


Select = Callable[[Level, str, str | None, str | None], Awaitable[list[InstanceRef]]]


async def wado_uri(call: Call, archive: ArchiveApi, select: Select) -> web.StreamResponse:
    params = call.request.query
    study, series, instance = check(params)
    wanted = [t.strip().lower() for t in params.get("contentType", "image/jpeg").split(",") if t.strip()]
    media_type = next((t for t in wanted if t in (DICOM, *RENDERED_TYPES)), None)
    if media_type is None:
        raise HttpError(406, f"WADO-URI: contentType must name one of {DICOM}, {', '.join(RENDERED_TYPES)}")
    ref = (await select("IMAGE", study, series, instance))[0]
    await asyncio.to_thread(audit.wado, call.request, call.base, archive, [ref])
    if media_type == DICOM:
        return await _dicom(call, archive, ref, params.get("transferSyntax", ""))
    try:
        how = _rendering(params, media_type)
    except RenderError as exc:
        raise HttpError(400, str(exc)) from None
    frame = _positive(params, "frameNumber") or 1

    def run() -> bytes:
        with archive.open(ref) as fp:
            return render(fp, frame, how)

    try:
        image = await asyncio.to_thread(run)
    except FrameError as exc:
        raise HttpError(404, f"WADO-URI: {exc}") from None
    return web.Response(body=image, content_type=media_type, headers=call.headers)


async def _dicom(call: Call, archive: ArchiveApi, ref: InstanceRef, syntax: str) -> web.StreamResponse:
    stored = ref.transfer_syntax
    if syntax and syntax != stored and not (syntax == acc.DEFAULT_SYNTAX and can_transcode(stored)):
        raise HttpError(406, f"WADO-URI: the object cannot be sent in transfer syntax {syntax}")
    answer = web.StreamResponse(headers={**call.headers, "Content-Type": DICOM})
    if call.head:
        await answer.prepare(call.request)
        await answer.write_eof()
        return answer
    fp = await asyncio.to_thread(archive.open, ref)
    try:
        if syntax and syntax != stored:
            body = await asyncio.to_thread(to_explicit_little, fp)
            answer.content_length = len(body)
            await answer.prepare(call.request)
            await answer.write(body)
        else:
            await answer.prepare(call.request)
            try:
                while chunk := await asyncio.to_thread(fp.read, CHUNK):
                    await answer.write(chunk)
            except OSError as exc:
                cut(call, exc)
    finally:
        fp.close()
    await answer.write_eof()
    return answer
