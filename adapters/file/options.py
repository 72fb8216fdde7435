"""``file:`` options, the producer's filename template, and what lint checks.

One dataclass serves both sides (the URI scheme is the same); :func:`problems`
reports an option given on the side where it means nothing, so a ``filename``
on a ``from:`` is an error and not a silent no-op.
"""

from __future__ import annotations

import codecs
import datetime as dt
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from esb.uri import Duration

#: where a node keeps the files it claimed, one subfolder per node
INPROGRESS = ".inprogress"
TEMPLATE_FIELDS = "{id}, {message_id}, {timestamp}, {header[NAME]}"
_FIELD = re.compile(r"^(id|message_id|timestamp|header\[[^\]{}]+\])$")


@dataclass(frozen=True, kw_only=True)
class FileOptions:
    directory: str = field(
        metadata={"doc": "Directory: file:///abs/dir, or file:rel/dir relative to the engine's current directory."}
    )
    # -- consumer ('from:') --------------------------------------------------------
    pattern: str = field(default="*", metadata={"doc": "Glob on file names (not paths); hidden files are skipped."})
    poll: Duration = field(default=Duration(1.0), metadata={"doc": "Pause between two scans of the directory."})
    move: str = field(
        default=".done",
        metadata={"doc": "Subfolder that takes a file once its message is journaled; empty: delete the file."},
    )
    error: str = field(
        default=".error", metadata={"doc": "Subfolder for files whose route failed (wait=true) or that cannot be read."}
    )
    charset: str = field(default="utf-8", metadata={"doc": "Charset of the files, set as the 'charset' header."})
    min_age: Duration = field(
        default=Duration(0),
        metadata={"doc": "Skip files modified more recently than this, so half-written files are not taken."},
    )
    batch: int = field(default=100, metadata={"doc": "Most files taken per scan."})
    recursive: bool = field(default=False, metadata={"doc": "Also scan subfolders (hidden ones and move/error not)."})
    wait: bool = field(
        default=False,
        metadata={
            "doc": "Move the file after the route completed (failed routes go to 'error'); "
            "false: right after the journal commit."
        },
    )
    lease: Duration = field(
        default=Duration(300.0),
        metadata={
            "doc": "A node whose heartbeat in .inprogress/ is older than this is dead: "
            "other nodes put its claimed files back."
        },
    )
    # -- producer ('to:') ----------------------------------------------------------
    filename: str = field(
        default="{message_id}-{id}.msg",
        metadata={
            "doc": f"Name of the written file, relative to the directory; fields {TEMPLATE_FIELDS} "
            "({id} is the delivery id, the same on every retry)."
        },
    )
    mkdirs: bool = field(default=True, metadata={"doc": "Create missing directories before writing."})
    exists: Literal["fail", "override", "append"] = field(
        default="fail",
        metadata={
            "doc": "When the file exists: fail (retried: the reader may take it meanwhile; a retry that finds "
            "the very bytes it would write counts as delivered), override (atomic replace), or append "
            "(in place: not atomic, let readers use min_age)."
        },
    )


CONSUMER_ONLY = frozenset(
    {"pattern", "poll", "move", "error", "charset", "min_age", "batch", "recursive", "wait", "lease"}
)
PRODUCER_ONLY = frozenset({"filename", "mkdirs", "exists"})
assert CONSUMER_ONLY | PRODUCER_ONLY | {"directory"} == {f.name for f in fields(FileOptions)}


def resolve(directory: str) -> Path:
    """The absolute directory; relative ones are taken from the current directory."""
    return Path(os.path.abspath(directory))


def subfolder(base: Path, name: str) -> Path:
    return Path(os.path.normpath(base / name))


def template_problems(template: str) -> list[str]:
    """What is wrong with a filename template (empty: usable)."""
    where = f"file: filename '{template}'"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"{where} is not a valid template ({exc}); use {TEMPLATE_FIELDS}"]
    out: list[str] = []
    literal = ""
    for text, name, spec, _conversion in parsed:
        literal += text
        if name is None:
            continue
        literal += "x"
        if not _FIELD.match(name) or "{" in (spec or ""):
            out.append(f"{where}: unknown field '{{{name}}}' (use {TEMPLATE_FIELDS})")
    if not template.strip():
        out.append(f"{where}: must not be empty")
    elif os.path.isabs(literal) or any(part in ("", "..") for part in literal.split("/")):
        out.append(f"{where}: must be a relative path inside the directory (no '..', no leading '/')")
    return out


def render(template: str, *, id: str, message_id: str, headers: Mapping[str, str], now: dt.datetime) -> str:
    """Fill a checked template; a missing header raises KeyError naming it."""
    return template.format_map(
        {
            "id": id,
            "message_id": message_id,
            "timestamp": now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z",
            "header": headers,
        }
    )


def unsafe_name(name: str) -> str | None:
    """Why a rendered file name may not be written (None: fine).

    Header values come from outside, so a name must stay inside the directory,
    and no part may be hidden: consumers skip hidden files (they are writers'
    temp files), so such a file would never be read.
    """
    if "\x00" in name or "\\" in name or os.path.isabs(name):
        return "must be a relative path without '\\' or NUL"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return "must not contain empty, '.' or '..' parts"
        if part.startswith("."):
            return f"must not contain a hidden part ('{part}')"
    return None


def problems(options: FileOptions, given: set[str], *, consumer: bool) -> list[str]:
    """Lint problems of one endpoint; ``given`` are the option names in the URI."""
    out: list[str] = []
    if not options.directory:
        return ["file: needs a directory, e.g. file:///data/in or file:data/in"]
    wrong_side = sorted(given & (PRODUCER_ONLY if consumer else CONSUMER_ONLY))
    for name in wrong_side:
        side, other = ("from", "to") if consumer else ("to", "from")
        out.append(f"file: option '{name}' has no effect in '{side}:' (it is for '{other}:' endpoints)")
    if not consumer:
        return out + template_problems(options.filename)
    pattern = options.pattern
    if not pattern or "/" in pattern or os.sep in pattern:
        out.append(f"file: pattern '{pattern}' must match file names, not paths (use recursive=true for subfolders)")
    elif pattern.startswith("."):
        out.append(f"file: pattern '{pattern}' only matches hidden files, which are skipped (writers' temp files)")
    if options.poll <= 0:
        out.append(f"file: poll must be more than 0 (got {options.poll:g}s)")
    if options.batch < 1:
        out.append(f"file: batch must be at least 1 (got {options.batch})")
    if options.lease <= options.poll:
        out.append(f"file: lease ({options.lease:g}s) must be longer than poll ({options.poll:g}s)")
    try:
        codecs.lookup(options.charset)
    except LookupError:
        out.append(f"file: charset '{options.charset}' is not known (e.g. utf-8, iso-8859-1, windows-1252)")
    base = resolve(options.directory)
    inprogress = subfolder(base, INPROGRESS)
    if not options.error:
        out.append("file: error must name a folder (failed files are kept, never deleted)")
    for name in ("move", "error"):
        value = getattr(options, name)
        if not value:
            continue
        folder = subfolder(base, value)
        if folder == base:
            out.append(f"file: {name} '{value}' is the polled directory itself; files would be read again")
        elif folder == inprogress or inprogress in folder.parents:
            out.append(f"file: {name} '{value}' is inside {INPROGRESS}/, which the engine keeps for claimed files")
    if options.move and options.move == options.error:
        out.append(f"file: move and error must be different folders (both '{options.move}')")
    return out
