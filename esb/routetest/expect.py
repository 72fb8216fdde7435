"""Comparing what a route did with what its test expects; each mismatch keeps its position."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from esb.errors import Position
from esb.exchange import SAFE_XML_PARSER
from esb.routetest import model as t

SHOWN = 200


@dataclass(frozen=True)
class Failure:
    """One expectation that did not hold."""

    position: Position
    what: str
    #: empty when ``what`` says it all (a test that cannot run as written)
    expected: str = ""
    actual: str = ""

    def __str__(self) -> str:
        if not self.expected:
            return f"{self.position}: {self.what}"
        return f"{self.position}: {self.what}: expected {self.expected}, got {self.actual}"


@dataclass(frozen=True)
class Message:
    """A message as a test sees it: the final exchange, a delivery or a call."""

    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def shown(text: str | None) -> str:
    """A value for a failure line: quoted, escapes visible, long bodies cut."""
    if text is None:
        return "(absent)"
    if len(text) > SHOWN:
        return repr(text[:SHOWN]) + f"... ({len(text)} characters)"
    return repr(text)


def xpath_text(result: Any) -> str:
    """An XPath result as the string a test compares: first node's text, true/false, 3 not 3.0."""
    if isinstance(result, list):
        if not result:
            return ""
        result = result[0]
        if isinstance(result, etree._Element):
            return result.text or ""
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, float) and result.is_integer():
        return str(int(result))
    return str(result)


def check_message(checks: Sequence[t.Check], message: Message, where: str) -> list[Failure]:
    failures: list[Failure] = []
    parsed: Any = None
    for check in checks:
        if check.kind == "body":
            if message.text != check.expected:
                failures.append(Failure(check.position, f"{where}body", shown(check.expected), shown(message.text)))
        elif check.kind == "body_contains":
            if check.expected is not None and check.expected not in message.text:
                failures.append(
                    Failure(check.position, f"{where}body", f"to contain {shown(check.expected)}", shown(message.text))
                )
        elif check.kind == "header":
            actual = message.headers.get(check.key)
            if actual != check.expected:
                what = f"{where}header '{check.key}'"
                failures.append(Failure(check.position, what, shown(check.expected), shown(actual)))
        else:
            what = f"{where}xpath '{check.key}'"
            if parsed is None:
                try:
                    parsed = etree.fromstring(message.body, SAFE_XML_PARSER)
                except etree.XMLSyntaxError as exc:
                    failures.append(
                        Failure(check.position, what, shown(check.expected), f"a body that is not XML ({exc})")
                    )
                    continue
            actual_text = xpath_text(etree.XPath(check.key, namespaces=check.namespaces or None)(parsed))
            if actual_text != check.expected:
                failures.append(Failure(check.position, what, shown(check.expected), shown(actual_text)))
    return failures


def same_endpoint(expected: str, actual: str) -> bool:
    """A URI written without a query matches the destination whatever its query."""
    return expected == actual or ("?" not in expected and actual.split("?", 1)[0] == expected)


def check_sequence(seq: t.Sequence, actual: list[tuple[str, Message]], noun: str) -> list[Failure]:
    got = [message for uri, message in actual if same_endpoint(seq.uri, uri)]
    failures: list[Failure] = []
    if len(got) != len(seq.messages):
        bodies = ", ".join(shown(m.text) for m in got[:5]) + (", ..." if len(got) > 5 else "")
        failures.append(
            Failure(
                seq.position,
                f"{noun} to '{seq.uri}'",
                f"{len(seq.messages)} message(s)",
                f"{len(got)}" + (f" ({bodies})" if got else ""),
            )
        )
    for index, (expected, message) in enumerate(zip(seq.messages, got, strict=False), start=1):
        failures.extend(check_message(expected.checks, message, f"{noun} #{index} to '{seq.uri}': "))
    return failures
