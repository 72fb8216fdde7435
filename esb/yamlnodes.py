"""Reading composed YAML nodes while keeping their positions.

PyYAML's ``compose`` keeps a mark (line, column) on every node; turning nodes
into plain values by hand is what lets lint say ``file:7:9: unknown step``.
Pydantic could validate the plain values, but its errors for a list of one-key
maps name union branches instead of the misspelt key, so the walk is ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from esb.errors import ConfigError, LintError, Position
from esb.interpolate import InterpolationError, interpolate
from esb.uri import Duration, UriError, did_you_mean


class Nodes:
    """Node helpers bound to one file; errors are collected, not raised."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[ConfigError] = []

    def pos(self, node: yaml.Node, offset: int = 0) -> Position:
        return Position(self.file, node.start_mark.line + 1, node.start_mark.column + 1 + offset)

    def error(self, node: yaml.Node, message: str, offset: int = 0) -> None:
        self.errors.append(ConfigError(message, self.pos(node, offset)))

    def compose(self, text: str) -> yaml.Node | None:
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            position = (
                Position(self.file, mark.line + 1, mark.column + 1) if mark is not None else Position(self.file, 1, 1)
            )
            message = f"YAML syntax: {exc.problem}"
            if exc.context and exc.context_mark is not None:  # e.g. where an unclosed '{' opened
                where = exc.context_mark
                message += f" ({exc.context} at line {where.line + 1}, column {where.column + 1})"
            self.errors.append(ConfigError(message, position))
            return None

    def mapping(
        self,
        node: yaml.Node,
        what: str,
        allowed: Iterable[str],
        required: Iterable[str] = (),
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Key -> (key node, value node); unknown and missing keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping")
            return {}
        allowed = list(allowed)
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                self.error(key_node, f"{what}: duplicate key '{key}'")
            elif allowed and key not in allowed:
                self.error(
                    key_node,
                    f"{what}: unknown key '{key}'"
                    + (did_you_mean(key, allowed) or f" (allowed: {', '.join(allowed)})"),
                )
            else:
                out[key] = (key_node, value_node)
        for key in required:
            if key not in out:
                self.error(node, f"{what}: missing required key '{key}'")
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.error(node, f"{what} must be a list")
            return []
        return list(node.value)

    def string(self, node: yaml.Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, f"{what} must be a string")
            return None
        try:
            return interpolate(str(node.value))
        except InterpolationError as exc:
            self.error(node, f"{what}: {exc}")
            return None

    def integer(self, node: yaml.Node, what: str, minimum: int = 0) -> int | None:
        text = self.string(node, what)
        if text is None:
            return None
        try:
            value = int(text)
        except ValueError:
            self.error(node, f"{what} must be a whole number (got '{text}')")
            return None
        if value < minimum:
            self.error(node, f"{what} must be at least {minimum} (got {value})")
            return None
        return value

    def duration(self, node: yaml.Node, what: str, *, positive: bool = False) -> float | None:
        """Seconds from ``30s``, ``5m``, ``1h``, ``7d`` or a bare number; None (and an error) when it is none."""
        text = self.string(node, what)
        if text is None:
            return None
        try:
            seconds = float(Duration.parse(text))
        except UriError as exc:
            self.error(node, f"{what}: {exc}")
            return None
        if positive and seconds <= 0:
            self.error(node, f"{what} must be longer than 0 (got '{text}')")
            return None
        return seconds

    def boolean(self, node: yaml.Node, what: str) -> bool | None:
        text = self.string(node, what)
        if text is None:
            return None
        if text.lower() in ("true", "yes", "on", "1"):
            return True
        if text.lower() in ("false", "no", "off", "0"):
            return False
        self.error(node, f"{what} must be true or false (got '{text}')")
        return None

    def choice(self, node: yaml.Node, what: str, allowed: list[str]) -> str | None:
        text = self.string(node, what)
        if text is not None and text not in allowed:
            self.error(
                node,
                f"{what} must be one of {'|'.join(allowed)} (got '{text}')" + did_you_mean(text, allowed),
            )
            return None
        return text

    def string_map(self, node: yaml.Node, what: str) -> dict[str, str]:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, f"{what} must be a mapping of names to strings")
            return {}
        out: dict[str, str] = {}
        for key_node, value_node in node.value:
            value = self.string(value_node, f"{what}.{key_node.value}")
            if value is not None:
                out[str(key_node.value)] = value
        return out


def read_config(
    file: Path, section: str, allowed: Iterable[str], *, title: str
) -> tuple[Nodes, dict[str, tuple[yaml.Node, yaml.Node]]]:
    """A config file's top-level keys, and the :class:`Nodes` that collects the problems found in them.

    Every ``config/*.yaml`` loader starts so: an empty file is a LintError
    ("empty {title} config"); an unknown key is reported at its line and column.
    """
    nodes = Nodes(str(file))
    root = nodes.compose(file.read_text(encoding="utf-8"))
    if root is None:
        raise LintError(nodes.errors or [ConfigError(f"empty {title} config", None)])
    return nodes, nodes.mapping(root, section, allowed)


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def plain(node: yaml.Node) -> Any:
    """A node as plain Python values (for free-form maps such as test inputs)."""
    return yaml.SafeLoader("").construct_document(node)
