"""QIDO-RS (PS3.18 10.6): query parameters -> a C-FIND identifier -> DICOM JSON results.

The archive's ``find`` does the matching (wildcards, ranges, UID lists, PN
rules), as it does for C-FIND; this module only translates. Each level returns
the attributes of PS3.18 Table 10.6.3-3/4/5, plus the levels above it that the
path leaves open (``/series`` returns study attributes too), plus
``includefield``; ``RetrieveURL`` is made here, since only the web side knows
its own address.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiMapping
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from adapters.dicomweb.dicomjson import to_json
from profiles.dicom.api import ArchiveApi, Level

RETRIEVE_URL = 0x00081190
QUERY_RETRIEVE_LEVEL = 0x00080052
STUDY_UID, SERIES_UID, SOP_UID = 0x0020000D, 0x0020000E, 0x00080018

#: PS3.18 Table 10.6.3-3 (study), -4 (series), -5 (instance): returned without being asked
DEFAULT_KEYS: dict[str, tuple[int, ...]] = {
    "STUDY": (
        0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080056, 0x00080061, 0x00080090, 0x00080201,
        0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x0020000D, 0x00200010, 0x00201206, 0x00201208,
    ),
    "SERIES": (0x00080005, 0x00080060, 0x00080201, 0x0008103E, 0x0020000E, 0x00200011, 0x00201209, 0x00400244,
               0x00400245),
    "IMAGE": (0x00080005, 0x00080016, 0x00080018, 0x00080056, 0x00080201, 0x00200013, 0x00280010, 0x00280011,
              0x00280100, 0x00280008),
}  # fmt: skip
#: what includefield=all adds: the other attributes archives commonly index at each level
ALL_KEYS: dict[str, tuple[int, ...]] = {
    "STUDY": (0x00080062, 0x00081030, 0x00081060, 0x00100021, 0x00101010, 0x00101020, 0x00101030, 0x00321032,
              0x00321060),
    "SERIES": (0x00080021, 0x00080031, 0x00080070, 0x00080080, 0x00081010, 0x00081050, 0x00081070, 0x00180015,
               0x00181030, 0x00200060),
    "IMAGE": (0x00080008, 0x00080023, 0x00080033, 0x00200012, 0x00280002, 0x00280004, 0x00280101, 0x00200020),
}  # fmt: skip
CONTROL = frozenset({"limit", "offset", "fuzzymatching", "includefield"})
_INTEGER_VRS = frozenset({"US", "UL", "SS", "SL", "UV", "SV"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_LEVELS = ("STUDY", "SERIES", "IMAGE")


class QueryError(ValueError):
    """A QIDO-RS parameter that cannot be used: answered 400 with the text."""


@dataclass
class Query:
    level: Level
    identifier: Dataset
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False
    #: attributes the client asked for beyond the defaults (all: dropped from the answer when empty)
    optional: set[int] = field(default_factory=set)
    #: the archive applied limit and offset itself
    paged: bool = False


def parse_tag(name: str) -> int:
    """A keyword (``PatientID``) or a tag (``00100020``) -> tag; QueryError otherwise."""
    text = name.strip()
    if len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text):
        return int(text, 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise QueryError(f"'{name}' is neither a DICOM attribute keyword nor a tag (e.g. PatientID or 00100020)")
    return int(tag)


def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        raise QueryError(f"attribute {tag:08X} is not in the DICOM dictionary; it cannot be matched") from None


def _element(tag: int, text: str) -> DataElement:
    vr = _vr(tag)
    value: Any = text
    if vr == "SQ":
        raise QueryError(f"{_name(tag)} is a sequence: match one of its attributes (e.g. {_name(tag)}.CodeValue)")
    if text and vr in _INTEGER_VRS | _FLOAT_VRS:
        try:
            value = int(text) if vr in _INTEGER_VRS else float(text)
        except ValueError:
            raise QueryError(f"{_name(tag)} takes a number (got '{text}')") from None
    elif vr == "UI":
        value = "\\".join(uid.strip() for uid in text.split(","))  # a UID list (PS3.18 8.3.4.1)
    return DataElement(tag, vr, value)


def _name(tag: int) -> str:
    return keyword_for_tag(tag) or f"{tag:08X}"


def _set(identifier: Dataset, path: str, value: str | None) -> None:
    """Put ``value`` (None: a return key) at ``path`` (``Seq.Attr`` nests one item per sequence)."""
    steps = [parse_tag(p) for p in path.split(".")]
    current = identifier
    for step in steps[:-1]:
        if _vr(step) != "SQ":
            raise QueryError(f"{_name(step)} is not a sequence; '{path}' cannot name an attribute inside it")
        if step not in current or not current[step].value:
            current.add(DataElement(step, "SQ", [Dataset()]))
        current = current[step].value[0]
    last = steps[-1]
    if value is None:
        if last not in current:
            current.add(DataElement(last, _vr(last), [] if _vr(last) == "SQ" else None))
        return
    current.add(_element(last, value))


def _number(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None:
        return None
    if not text.strip().isdigit():
        raise QueryError(f"'{name}' must be a whole number of at least 0 (got '{text}')")
    return int(text)


def build_query(level: Level, params: MultiMapping[str], fixed: Mapping[int, str]) -> Query:
    """The identifier for a QIDO-RS request at ``level``; ``fixed`` are the UIDs the path names."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    depth = _LEVELS.index(level)
    levels = [level]
    if level == "IMAGE" and SERIES_UID not in fixed:
        levels.append("SERIES")
    if level != "STUDY" and STUDY_UID not in fixed:
        levels.append("STUDY")
    for part in levels:
        for tag in DEFAULT_KEYS[part]:
            _set(identifier, f"{tag:08X}", None)
    for tag in (STUDY_UID, SERIES_UID, SOP_UID)[: depth + 1]:
        _set(identifier, f"{tag:08X}", None)  # needed for RetrieveURL whatever the client asked
    query = Query(level, identifier)
    for name, value in params.items():
        key = name.strip()
        if key == "includefield":
            for item in (v for v in value.split(",") if v.strip()):
                if item.strip().lower() == "all":
                    for tag in itertools.chain.from_iterable(ALL_KEYS[n] for n in _LEVELS[: depth + 1]):
                        if tag not in identifier:
                            query.optional.add(tag)
                            _set(identifier, f"{tag:08X}", None)
                else:
                    _set(identifier, item.strip(), None)
        elif key not in CONTROL:
            if len(params.getall(name)) > 1:
                raise QueryError(f"'{key}' is given more than once; match a list of UIDs with commas instead")
            _set(identifier, key, value)
    fuzzy = params.get("fuzzymatching", "false").strip().lower()
    if fuzzy not in ("true", "false"):
        raise QueryError(f"'fuzzymatching' must be true or false (got '{params['fuzzymatching']}')")
    query.fuzzy = fuzzy == "true"
    for tag, uid in fixed.items():
        identifier.add(DataElement(tag, "UI", uid))
    query.limit, query.offset = _number(params, "limit"), _number(params, "offset") or 0
    return query


def retrieve_url(base: str, ds: Dataset, level: str) -> str:
    url = f"{base}/studies/{ds.get('StudyInstanceUID', '')}"
    if level in ("SERIES", "IMAGE"):
        url += f"/series/{ds.get('SeriesInstanceUID', '')}"
    if level == "IMAGE":
        url += f"/instances/{ds.get('SOPInstanceUID', '')}"
    return url


def pages_itself(archive: object) -> bool:
    """Whether the archive's ``find`` takes ``limit`` and ``offset`` (paging in its index, not here)."""
    try:
        parameters = inspect.signature(archive.find).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False
    return "limit" in parameters and "offset" in parameters


def find(archive: ArchiveApi, query: Query, scope: Mapping[str, Any] | None = None) -> Iterator[Dataset]:
    """The archive's matches for ``query``: the page (one more, to tell whether more are left) when it pages.

    ``scope``: the caller's ``scope`` keyword for the archive (:mod:`esb.authz`; empty: every study).
    """
    scope = scope or {}
    if not pages_itself(archive):
        return archive.find(query.level, query.identifier, model="study", **scope)
    limit = None if query.limit is None else query.limit + 1
    paged: Any = archive  # ArchiveApi.find has no paging parameters; this archive's has
    found: Iterator[Dataset] = paged.find(
        query.level, query.identifier, model="study", limit=limit, offset=query.offset, **scope
    )
    query.paged = True
    return found


def results(query: Query, found: Iterator[Dataset], base: str) -> tuple[list[dict[str, Any]], bool]:
    """The page of DICOM JSON results ``limit``/``offset`` select, and whether more matches are left."""
    skip = 0 if query.paged else query.offset
    stop = None if query.limit is None else skip + query.limit
    page = list(itertools.islice(found, skip, None if stop is None else stop + 1))
    more = query.limit is not None and len(page) > query.limit
    out = []
    for ds in page[: query.limit] if query.limit is not None else page:
        for tag in list(ds.keys()):
            if tag == QUERY_RETRIEVE_LEVEL or (tag in query.optional and ds[tag].is_empty):
                del ds[tag]
        ds.add(DataElement(RETRIEVE_URL, "UR", retrieve_url(base, ds, query.level)))
        out.append(to_json(ds))
    return out, more
