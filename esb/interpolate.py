"""``${NAME}`` and ``${NAME:-default}`` in config and route files.

Done on scalar nodes after YAML composition, so a value that came from the
environment still reports the position of the node that asked for it. Defaults
may nest (``${ESB_DB_URL:-sqlite:///${ESB_DATA_DIR:-./var}/esb.db}``), which a
single regular expression cannot match, hence the small scanner; ``$$`` is a
literal ``$``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(ValueError):
    pass


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    index = start
    while index < len(text):
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise InterpolationError(f"unclosed '${{' in '{text}'")


def interpolate(text: str, env: Mapping[str, str] | None = None) -> str:
    source = os.environ if env is None else env
    out: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith("$$", index):
            out.append("$")
            index += 2
            continue
        if not text.startswith("${", index):
            out.append(text[index])
            index += 1
            continue
        name_match = _NAME.match(text, index + 2)
        if name_match is None:
            raise InterpolationError(f"'{text[index:]}' is not a ${{NAME}} or ${{NAME:-default}} reference")
        end = _closing_brace(text, index + 2)
        rest = text[name_match.end() : end]
        name = name_match.group(0)
        default: str | None = None
        if rest.startswith(":-"):
            default = rest[2:]
        elif rest:
            raise InterpolationError(f"'{text[index : end + 1]}': write ${{{name}}} or ${{{name}:-default}}")
        value = source.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise InterpolationError(
                    f"environment variable '{name}' is not set (set it, or write ${{{name}:-default}})"
                )
            value = interpolate(default, source)
        out.append(value)
        index = end + 1
    return "".join(out)
