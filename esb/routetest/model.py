"""Route tests as data: what goes in, what the in-line endpoints answer, what must come out.

Every object keeps the :class:`~esb.errors.Position` of its YAML node, so a
failing expectation is reported at the line that states it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from esb.errors import Position

Status = Literal["processed", "filtered", "failed"]
STATUSES: tuple[Status, ...] = ("processed", "filtered", "failed")


@dataclass(frozen=True)
class Check:
    """One expectation on a message.

    ``kind`` is ``body`` (equal), ``body_contains``, ``xpath`` (``key`` is the
    expression) or ``header`` (``key`` is the name; ``expected`` None: absent).
    """

    kind: Literal["body", "body_contains", "xpath", "header"]
    expected: str | None
    position: Position
    key: str = ""
    namespaces: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageExpect:
    """The checks for one message (a delivery, a call, or the final exchange)."""

    checks: tuple[Check, ...]
    position: Position


@dataclass(frozen=True)
class Sequence:
    """What one endpoint must have received, in order; empty: nothing at all."""

    uri: str
    messages: tuple[MessageExpect, ...]
    position: Position


@dataclass(frozen=True)
class MockReply:
    """The answer of a mocked in-line endpoint: a reply, or an error it raises.

    ``body`` None keeps the request body, as a service that only adds headers.
    """

    position: Position
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Mock:
    """Replies for one endpoint: one for every call, or a list used call by call."""

    uri: str
    replies: tuple[MockReply, ...]
    repeat: bool
    position: Position


@dataclass(frozen=True)
class Expect:
    position: Position
    status: Status = "processed"
    status_position: Position | None = None
    message: MessageExpect | None = None
    deliveries: tuple[Sequence, ...] = ()
    calls: tuple[Sequence, ...] = ()
    reply: dict[str, str] = field(default_factory=dict)
    reply_position: Position | None = None
    error: str | None = None
    error_position: Position | None = None


@dataclass(frozen=True)
class RouteTest:
    name: str
    route: str
    route_position: Position
    position: Position
    body: bytes
    headers: dict[str, str]
    mocks: dict[str, Mock]
    expect: Expect


@dataclass(frozen=True)
class RouteTestFile:
    path: str
    tests: tuple[RouteTest, ...]
