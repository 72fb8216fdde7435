"""``${NAME}`` and ``${NAME:-default}`` in config and route files.

Done on scalar nodes after YAML composition, so a value that came from the
environment still reports the position of the node that asked for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class InterpolationError(ValueError):
    pass


def interpolate(text: str, env: Mapping[str, str] | None = None) -> str:
    source = os.environ if env is None else env

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = source.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise InterpolationError(
                    f"environment variable '{name}' is not set (set it, or write ${{{name}:-default}})"
                )
            return default
        return value

    return _VAR.sub(replace, text)
