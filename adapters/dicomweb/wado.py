"""WADO-RS (PS3.18 10.4): instances, metadata, frames and bulk data, read from the archive.

Instances stream from ``ArchiveApi.open`` one chunk at a time (a study never
sits in memory); metadata reads each header up to its pixel data, in a few
threads at once, since a viewer waits for a whole series' metadata before it
draws; frames are read by seeking (see :mod:`.frames`). Every archive call is
synchronous and runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from aiohttp import web

from adapters.dicomweb import accept as acc
from adapters.dicomweb.dicomjson import PIXEL_TAGS, TagPath, element_at, read_header
from adapters.dicomweb.frames import (
    NATIVE,
    FrameError,
    check_numbers,
    decoded_frame,
    frame_count,
    media_type,
    read_frame,
)
from adapters.dicomweb.metadata import instance_json
from adapters.dicomweb.responses import DICOM_JSON, Call, HttpError, MultipartStream, cut, dicom_json
from adapters.dicomweb.transcode import can_transcode, to_explicit_little
from profiles.dicom.api import ArchiveApi, InstanceRef

CHUNK = 1024 * 1024
#: threads reading headers for one metadata request
METADATA_THREADS = 4
DICOM = "application/dicom"
OCTETS = "application/octet-stream"
AVAILABLE_TRANSFER_SYNTAX = "00083002"


def instance_url(base: str, ref: InstanceRef) -> str:
    return f"{base}/studies/{ref.study_uid}/series/{ref.series_uid}/instances/{ref.sop_instance_uid}"


def not_acceptable(what: str) -> HttpError:
    return HttpError(406, f"none of the media types in Accept can be produced for {what}")


# -- instances -----------------------------------------------------------------------


def _syntax_for(choice: str, stored: str) -> str | None:
    """The transfer syntax an instance is sent in for a requested one ('' = default), or None."""
    wanted = choice or acc.DEFAULT_SYNTAX
    if wanted in (acc.ANY_SYNTAX, stored):
        return stored
    if wanted == acc.DEFAULT_SYNTAX and can_transcode(stored):
        return wanted
    return None


def retrieve_plan(ranges: list[acc.MediaRange], refs: list[InstanceRef], *, single: bool) -> tuple[bool, str]:
    """(multipart?, requested syntax) of the first Accept range every instance can be sent in."""
    for media_range in ranges:
        if media_range.type == DICOM and single:
            choices = [acc.PartChoice(DICOM, media_range.params.get("transfer-syntax", ""))]
            multipart = False
        else:
            choices = acc.part_choices([media_range], (DICOM,))
            multipart = True
        for choice in choices:
            if all(_syntax_for(choice.syntax, r.transfer_syntax) is not None for r in refs):
                return multipart, choice.syntax
    raise not_acceptable("these instances")


async def _chunks(archive: ArchiveApi, ref: InstanceRef, wanted: str) -> AsyncIterator[bytes]:
    fp = await asyncio.to_thread(archive.open, ref)
    try:
        if wanted != ref.transfer_syntax:
            yield await asyncio.to_thread(to_explicit_little, fp)
            return
        while chunk := await asyncio.to_thread(fp.read, CHUNK):
            yield chunk
    finally:
        fp.close()


async def retrieve(call: Call, archive: ArchiveApi, refs: list[InstanceRef], *, single: bool) -> web.StreamResponse:
    """Study, series or instance retrieve; ``single``: an instance, which may be asked for as application/dicom."""
    multipart, choice = retrieve_plan(acc.parse_accept(call.request.headers.get("Accept")), refs, single=single)
    if not multipart:
        ref = refs[0]
        wanted = _syntax_for(choice, ref.transfer_syntax) or ref.transfer_syntax
        answer = web.StreamResponse(headers={**call.headers, "Content-Type": f"{DICOM}; transfer-syntax={wanted}"})
        await answer.prepare(call.request)
        try:
            if not call.head:
                async for chunk in _chunks(archive, ref, wanted):
                    await answer.write(chunk)
        except Exception as exc:
            cut(call, exc)
        await answer.write_eof()
        return answer
    stream = MultipartStream(call, DICOM)
    await stream.start()
    try:
        for ref in refs:
            wanted = _syntax_for(choice, ref.transfer_syntax) or ref.transfer_syntax
            part_type = f"{DICOM}; transfer-syntax={wanted}"
            await stream.part(part_type, _chunks(archive, ref, wanted), instance_url(call.base, ref))
    except Exception as exc:
        await stream.abort(exc)
    return await stream.finish()


# -- metadata ------------------------------------------------------------------------


def bulk_path(path: TagPath) -> str:
    """``(tag, item, tag)`` -> ``0040A730/0/00420011``: tags in hex, item indexes in decimal."""
    return "/".join(f"{step:08X}" if position % 2 == 0 else str(step) for position, step in enumerate(path))


def instance_metadata(archive: ArchiveApi, ref: InstanceRef, base: str, threshold: int) -> dict[str, Any]:
    url = instance_url(base, ref)
    with archive.open(ref) as fp:
        out, syntax, pixels = instance_json(fp, lambda path: f"{url}/bulkdata/{bulk_path(path)}", threshold)
    if pixels is not None:
        key = f"{pixels.tag:08X}"
        out[key] = {"vr": pixels.vr, "BulkDataURI": f"{url}/bulkdata/{key}"}
    out[AVAILABLE_TRANSFER_SYNTAX] = {"vr": "UI", "Value": [syntax]}
    return dict(sorted(out.items()))


async def metadata(call: Call, archive: ArchiveApi, refs: list[InstanceRef], threshold: int) -> web.Response:
    if not acc.accepts(acc.parse_accept(call.request.headers.get("Accept")), DICOM_JSON, "application/json"):
        raise not_acceptable("metadata (application/dicom+json)")
    batches = [refs[i::METADATA_THREADS] for i in range(min(METADATA_THREADS, len(refs)))]

    def read(batch: list[InstanceRef]) -> list[dict[str, Any]]:
        return [instance_metadata(archive, ref, call.base, threshold) for ref in batch]

    done = await asyncio.gather(*(asyncio.to_thread(read, batch) for batch in batches))
    by_uid = {item["00080018"]["Value"][0]: item for batch in done for item in batch if "00080018" in item}
    ordered = [by_uid.get(ref.sop_instance_uid) for ref in refs]
    return dicom_json(call, [item for item in ordered if item is not None])


# -- frames and bulk data --------------------------------------------------------------


@dataclass(frozen=True)
class FramePlan:
    part_type: str
    #: the multipart's type parameter
    multipart_type: str
    decode: bool = False


def frame_plan(ranges: list[acc.MediaRange], stored: str) -> FramePlan:
    """How frames stored in ``stored`` are sent for this Accept (PS3.18 8.7.3.5, Table 8.7.3-5)."""
    native = stored in NATIVE
    own_type = media_type(stored)
    label = acc.DEFAULT_SYNTAX if native else stored
    for media_range in ranges:
        if media_range.wildcard or media_range.type == "multipart/related" and "type" not in media_range.params:
            return FramePlan(f"{own_type}; transfer-syntax={label}", own_type)
        if media_range.type != "multipart/related":
            continue
        part, syntax = media_range.params["type"].lower(), media_range.params.get("transfer-syntax", "")
        if part == OCTETS:
            if syntax == acc.ANY_SYNTAX or syntax == label:
                return FramePlan(f"{OCTETS}; transfer-syntax={label}", OCTETS)
            if syntax in ("", acc.DEFAULT_SYNTAX) and can_transcode(stored):
                return FramePlan(f"{OCTETS}; transfer-syntax={acc.DEFAULT_SYNTAX}", OCTETS, decode=not native)
        elif part == own_type and not native and syntax in ("", acc.ANY_SYNTAX, stored):
            return FramePlan(f"{own_type}; transfer-syntax={stored}", own_type)
    raise not_acceptable(f"frames stored as {stored}")


def _frames(fp: BinaryIO, numbers: list[int], decode: bool) -> list[bytes]:
    header = read_header(fp)
    check_numbers(header, numbers)
    if decode:
        return [decoded_frame(fp, n) for n in numbers]
    return [read_frame(fp, header, n) for n in numbers]


def _all_frames(fp: BinaryIO, decode: bool) -> list[bytes]:
    header = read_header(fp)
    return _frames(fp, list(range(1, frame_count(header) + 1)), decode)


async def _read(archive: ArchiveApi, ref: InstanceRef, work: Callable[[BinaryIO], Any]) -> Any:
    def run() -> Any:
        with archive.open(ref) as fp:
            return work(fp)

    try:
        return await asyncio.to_thread(run)
    except FrameError as exc:
        raise HttpError(404, str(exc)) from None


async def frames(call: Call, archive: ArchiveApi, ref: InstanceRef, numbers: list[int] | None) -> web.StreamResponse:
    """The frames ``numbers`` (None: all, for the pixel data bulk data URI) as multipart/related."""
    plan = frame_plan(acc.parse_accept(call.request.headers.get("Accept")), ref.transfer_syntax)
    if numbers is None:
        found = await _read(archive, ref, lambda fp: _all_frames(fp, plan.decode))
        numbers = list(range(1, len(found) + 1))
    else:
        found = await _read(archive, ref, lambda fp: _frames(fp, numbers, plan.decode))
    stream = MultipartStream(call, plan.multipart_type)
    await stream.start()
    url = instance_url(call.base, ref)
    for number, data in zip(numbers, found, strict=True):
        await stream.part(plan.part_type, data, f"{url}/frames/{number}")
    return await stream.finish()


def parse_bulk_path(text: str) -> TagPath:
    steps = [s for s in text.split("/") if s]
    try:
        path = tuple(int(s, 16) if i % 2 == 0 else int(s) for i, s in enumerate(steps))
    except ValueError:
        path = ()
    if not path or len(path) % 2 == 0 or any(len(s) != 8 for s in steps[::2]):
        raise HttpError(404, f"'{text}' is not a bulk data path (tag[/item/tag...], tags as 8 hex digits)")
    return path


async def bulkdata(call: Call, archive: ArchiveApi, ref: InstanceRef, path: TagPath) -> web.StreamResponse:
    """One bulk data value (PS3.18 10.4.1.1.5): pixel data as its frames, other values as one octet part."""
    if len(path) == 1 and path[0] in PIXEL_TAGS:
        return await frames(call, archive, ref, None)
    if not acc.part_choices(acc.parse_accept(call.request.headers.get("Accept")), (OCTETS,)):
        raise not_acceptable("bulk data (application/octet-stream)")

    def value(fp: BinaryIO) -> bytes | None:
        element = element_at(read_header(fp).dataset, path)
        data = element.value if element is not None else None
        return bytes(data) if isinstance(data, bytes | bytearray) else None

    data = await _read(archive, ref, value)
    if data is None:
        raise HttpError(404, f"the instance has no binary attribute at {bulk_path(path)}")
    stream = MultipartStream(call, OCTETS)
    await stream.start()
    await stream.part(OCTETS, data, f"{instance_url(call.base, ref)}/bulkdata/{bulk_path(path)}")
    return await stream.finish()
