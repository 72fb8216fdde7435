"""``*_test.yaml`` files -> :class:`~esb.routetest.model.RouteTestFile`, every problem with its position.

The walk over composed nodes is the one route files use (:class:`esb.yamlnodes.Nodes`),
so a malformed test says ``file:line:col`` like ``esb lint`` does. Bodies and
expected values are taken verbatim: no ``${VAR}`` interpolation, since a test
must mean the same on every machine; endpoint URIs (mock and delivery keys) are
interpolated, because the route's URIs are.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from lxml import etree

from esb.errors import ConfigError, LintError, Position
from esb.routetest import model as t
from esb.uri import UriError, parse_uri
from esb.yamlnodes import Nodes

TEST_SUFFIXES = ("_test.yaml", "_test.yml")
TEST_KEYS = ("name", "route", "input", "mocks", "expect")
MESSAGE_KEYS = ("body", "body_file", "body_contains", "xpath", "headers", "namespaces")
EXPECT_KEYS = ("status", *MESSAGE_KEYS, "deliveries", "calls", "reply", "error")
MOCK_KEYS = ("body", "body_file", "headers", "error")
NULL_TAG = "tag:yaml.org,2002:null"


def find_test_files(paths: Iterable[Path]) -> tuple[list[Path], list[ConfigError]]:
    """``*_test.yaml`` under the directories given; files given by name are taken as they are."""
    found: list[Path] = []
    errors: list[ConfigError] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and p.name.endswith(TEST_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            errors.append(ConfigError(f"{path}: no such test file or directory"))
    return found, errors


class RouteTestParser:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.n = Nodes(str(path))

    def parse(self, text: str) -> t.RouteTestFile:
        root = self.n.compose(text)
        tests: list[t.RouteTest] = []
        if root is None:
            if not self.n.errors:
                self.n.errors.append(ConfigError("test file is empty", Position(str(self.path), 1, 1)))
        else:
            top = self.n.mapping(root, "test file", ["tests"], ["tests"])
            names: dict[str, Position] = {}
            for node in self.n.sequence(top["tests"][1], "tests") if "tests" in top else []:
                test = self.test(node)
                if test is None:
                    continue
                if test.name in names:
                    self.n.error(node, f"duplicate test name '{test.name}' (first at {names[test.name]})")
                names[test.name] = test.position
                tests.append(test)
            if "tests" in top and not tests and not self.n.errors:
                self.n.error(top["tests"][1], "tests: the list is empty")
        if self.n.errors:
            raise LintError(
                sorted(self.n.errors, key=lambda e: (e.position.line, e.position.column) if e.position else (0, 0))
            )
        return t.RouteTestFile(str(self.path), tuple(tests))

    # -- scalars, kept verbatim ---------------------------------------------------------

    def text(self, node: yaml.Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == NULL_TAG:
            self.n.error(node, f"{what} must be a string")
            return None
        return str(node.value)

    def texts(self, node: yaml.Node, what: str, *, nulls: bool = False) -> dict[str, str | None]:
        if not isinstance(node, yaml.MappingNode):
            self.n.error(node, f"{what} must be a mapping of names to strings")
            return {}
        out: dict[str, str | None] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if nulls and isinstance(value_node, yaml.ScalarNode) and value_node.tag == NULL_TAG:
                out[key] = None
            else:
                value = self.text(value_node, f"{what}.{key}")
                if value is not None:
                    out[key] = value
        return out

    def strings(self, node: yaml.Node, what: str) -> dict[str, str]:
        return {k: v for k, v in self.texts(node, what).items() if v is not None}

    def body_file(self, node: yaml.Node) -> bytes | None:
        name = self.text(node, "body_file")
        if name is None:
            return None
        path = self.path.parent / name
        try:
            return path.read_bytes()
        except OSError as exc:
            self.n.error(node, f"body_file '{name}' cannot be read ({exc.strerror}); it is relative to the test file")
            return None

    def body(self, keys: dict[str, tuple[yaml.Node, yaml.Node]], what: str) -> bytes | None:
        if "body" in keys and "body_file" in keys:
            self.n.error(keys["body_file"][0], f"{what}: give 'body' or 'body_file', not both")
            return None
        if "body_file" in keys:
            return self.body_file(keys["body_file"][1])
        if "body" in keys:
            value = self.text(keys["body"][1], "body")
            return value.encode("utf-8") if value is not None else None
        return None

    def uri_key(self, node: yaml.Node, what: str) -> str | None:
        """Endpoint URIs are interpolated like the route's own, so ``${ESB_DATA_DIR:-./var}`` matches."""
        raw = self.n.string(node, what)
        if raw is None:
            return None
        try:
            parse_uri(raw)
        except UriError as exc:
            self.n.error(node, f"{what}: {exc}")
            return None
        return raw

    # -- one test --------------------------------------------------------------------------

    def test(self, node: yaml.Node) -> t.RouteTest | None:
        keys = self.n.mapping(node, "test", TEST_KEYS, ["name", "route", "input", "expect"])
        name = self.text(keys["name"][1], "name") if "name" in keys else None
        route = self.text(keys["route"][1], "route") if "route" in keys else None
        body, headers = b"", {}
        if "input" in keys:
            inputs = self.n.mapping(keys["input"][1], "input", ["body", "body_file", "headers"])
            body = self.body(inputs, "input") or b""
            headers = self.strings(inputs["headers"][1], "headers") if "headers" in inputs else {}
        mocks = self.mocks(keys["mocks"][1]) if "mocks" in keys else {}
        expect = self.expect(keys["expect"][1]) if "expect" in keys else None
        if name is None or route is None or expect is None:
            return None
        return t.RouteTest(
            name=name,
            route=route,
            route_position=self.n.pos(keys["route"][1]),
            position=self.n.pos(node),
            body=body,
            headers=headers,
            mocks=mocks,
            expect=expect,
        )

    def mocks(self, node: yaml.Node) -> dict[str, t.Mock]:
        out: dict[str, t.Mock] = {}
        if not isinstance(node, yaml.MappingNode):
            self.n.error(node, "mocks must be a mapping of endpoint URIs to replies")
            return out
        for key_node, value_node in node.value:
            uri = self.uri_key(key_node, "mock")
            repeat = not isinstance(value_node, yaml.SequenceNode)
            items = [value_node] if repeat else self.n.sequence(value_node, "mock replies")
            replies = [r for r in (self.mock_reply(item) for item in items) if r is not None]
            if uri is not None:
                out[uri] = t.Mock(uri, tuple(replies), repeat, self.n.pos(key_node))
        return out

    def mock_reply(self, node: yaml.Node) -> t.MockReply | None:
        keys = self.n.mapping(node, "mock reply", MOCK_KEYS)
        if not isinstance(node, yaml.MappingNode):
            return None
        headers = self.strings(keys["headers"][1], "headers") if "headers" in keys else {}
        error = self.text(keys["error"][1], "error") if "error" in keys else None
        if error is not None and ("body" in keys or "body_file" in keys):
            self.n.error(keys["error"][0], "mock reply: 'error' raises instead of replying; drop 'body'")
        return t.MockReply(self.n.pos(node), self.body(keys, "mock reply"), headers, error)

    # -- expectations --------------------------------------------------------------------

    def message(self, node: yaml.Node, keys: dict[str, tuple[yaml.Node, yaml.Node]]) -> t.MessageExpect | None:
        namespaces = self.strings(keys["namespaces"][1], "namespaces") if "namespaces" in keys else {}
        checks: list[t.Check] = []
        if "body" in keys or "body_file" in keys:
            body = self.body(keys, "expect")
            if body is not None:
                where = keys["body" if "body" in keys else "body_file"][1]
                checks.append(t.Check("body", body.decode("utf-8", errors="replace"), self.n.pos(where)))
        if "body_contains" in keys:
            value = keys["body_contains"][1]
            parts = self.n.sequence(value, "body_contains") if isinstance(value, yaml.SequenceNode) else [value]
            for part in parts:
                text = self.text(part, "body_contains")
                if text is not None:
                    checks.append(t.Check("body_contains", text, self.n.pos(part)))
        if "xpath" in keys:
            checks.extend(self.xpaths(keys["xpath"][1], namespaces))
        if "headers" in keys:
            header_node = keys["headers"][1]
            for name, expected in self.texts(header_node, "headers", nulls=True).items():
                checks.append(t.Check("header", expected, self.value_pos(header_node, name), key=name))
        return t.MessageExpect(tuple(checks), self.n.pos(node)) if checks else None

    def value_pos(self, mapping: yaml.Node, key: str) -> Position:
        for key_node, value_node in mapping.value:
            if str(key_node.value) == key:
                return self.n.pos(value_node)
        return self.n.pos(mapping)

    def xpaths(self, node: yaml.Node, namespaces: dict[str, str]) -> list[t.Check]:
        checks: list[t.Check] = []
        for expression, expected in self.texts(node, "xpath").items():
            assert expected is not None
            try:
                etree.XPath(expression, namespaces=namespaces or None)
            except etree.XPathSyntaxError as exc:
                for key_node, _ in node.value:
                    if str(key_node.value) == expression:
                        self.n.error(key_node, f"xpath '{expression}' does not compile: {exc}")
                continue
            checks.append(t.Check("xpath", expected, self.value_pos(node, expression), expression, namespaces))
        return checks

    def sequences(self, node: yaml.Node, what: str) -> tuple[t.Sequence, ...]:
        if not isinstance(node, yaml.MappingNode):
            self.n.error(node, f"{what} must be a mapping of endpoint URIs to lists of messages")
            return ()
        out: list[t.Sequence] = []
        for key_node, value_node in node.value:
            uri = self.uri_key(key_node, what)
            messages: list[t.MessageExpect] = []
            for item in self.n.sequence(value_node, f"{what} to '{key_node.value}'"):
                keys = self.n.mapping(item, "message", MESSAGE_KEYS)
                expected = self.message(item, keys)
                # An item with no checks still counts: it says "one message came".
                messages.append(expected or t.MessageExpect((), self.n.pos(item)))
            if uri is not None:
                out.append(t.Sequence(uri, tuple(messages), self.n.pos(key_node)))
        return tuple(out)

    def expect(self, node: yaml.Node) -> t.Expect | None:
        keys = self.n.mapping(node, "expect", EXPECT_KEYS)
        if not isinstance(node, yaml.MappingNode):
            return None
        status: t.Status = "processed"
        status_position = None
        if "status" in keys:
            value = self.n.choice(keys["status"][1], "status", list(t.STATUSES))
            status = value if value in t.STATUSES else "processed"
            status_position = self.n.pos(keys["status"][1])
        reply: dict[str, str] = {}
        reply_position = None
        if "reply" in keys:
            reply = self.strings(keys["reply"][1], "reply")
            reply_position = self.n.pos(keys["reply"][1])
        error = self.text(keys["error"][1], "error") if "error" in keys else None
        return t.Expect(
            position=self.n.pos(node),
            status=status,
            status_position=status_position,
            message=self.message(node, keys),
            deliveries=self.sequences(keys["deliveries"][1], "deliveries") if "deliveries" in keys else (),
            calls=self.sequences(keys["calls"][1], "calls") if "calls" in keys else (),
            reply=reply,
            reply_position=reply_position,
            error=error,
            error_position=self.n.pos(keys["error"][1]) if "error" in keys else None,
        )


def load_test_file(path: Path) -> t.RouteTestFile:
    """Parse one test file; raises :class:`LintError` with every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LintError([ConfigError(f"{path}: cannot read test file: {exc}")]) from None
    return RouteTestParser(path).parse(text)
