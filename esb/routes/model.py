"""The typed model of a route file, built by :mod:`esb.routes.parse`.

Every object keeps the :class:`~esb.errors.Position` of the YAML node it came
from, so a problem found later (an unknown adapter option, a transform that does
not import) is still reported at the right file, line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from esb.errors import Position

StoreMode = Literal["full", "metadata", "none"]


@dataclass(frozen=True)
class RetryPolicy:
    """Delivery retries: attempt n waits delay * multiplier**(n-1), capped."""

    max_attempts: int = 5
    delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0

    def wait_before(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (2, 3, ...)."""
        return min(self.max_delay, self.delay * self.multiplier ** max(0, attempt - 2))


@dataclass(frozen=True)
class Uri:
    value: str
    position: Position


@dataclass(frozen=True)
class Predicate:
    """A test on the message: XPath, a Python callable, or a header match."""

    kind: Literal["xpath", "python", "header"]
    expression: str
    position: Position
    namespaces: dict[str, str] = field(default_factory=dict)
    header_value: str | None = None
    header_regex: bool = False


@dataclass(frozen=True)
class Step:
    position: Position


@dataclass(frozen=True)
class ToStep(Step):
    uri: Uri
    retry: RetryPolicy | None = None


@dataclass(frozen=True)
class WiretapStep(Step):
    uri: Uri


@dataclass(frozen=True)
class MulticastStep(Step):
    uris: tuple[Uri, ...]


@dataclass(frozen=True)
class EnrichStep(Step):
    uri: Uri
    #: python callable (original, reply) -> body; default: the reply replaces the body
    strategy: str | None = None


@dataclass(frozen=True)
class TransformStep(Step):
    kind: Literal["xslt", "python"]
    target: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidateStep(Step):
    kind: str
    target: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FilterStep(Step):
    predicate: Predicate


@dataclass(frozen=True)
class When:
    predicate: Predicate
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class ChoiceStep(Step):
    whens: tuple[When, ...]
    otherwise: tuple[Step, ...] = ()


@dataclass(frozen=True)
class SetHeaderStep(Step):
    name: str
    #: exactly one of value / xpath / python
    value: str | None = None
    xpath: str | None = None
    python: str | None = None
    namespaces: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitStep(Step):
    kind: Literal["xpath", "python"]
    expression: str
    steps: tuple[Step, ...]
    namespaces: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LogStep(Step):
    message: str
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class ReplyStep(Step):
    """on_error: the protocol answer to give the caller (ACK code, HTTP status...)."""

    values: dict[str, str]


@dataclass(frozen=True)
class Route:
    id: str
    file: str
    position: Position
    source: Uri
    steps: tuple[Step, ...]
    on_error: tuple[Step, ...] = ()
    description: str = ""
    retry: RetryPolicy = RetryPolicy()
    store: StoreMode = "full"
    concurrency: int = 8
    max_pending: int = 1000
    enabled: bool = True
    #: keep messages this many seconds after completion (None: forever)
    retention: float | None = None


def walk(steps: tuple[Step, ...]) -> list[Step]:
    """Every step, nested ones included, in file order."""
    out: list[Step] = []
    for step in steps:
        out.append(step)
        if isinstance(step, ChoiceStep):
            for when in step.whens:
                out.extend(walk(when.steps))
            out.extend(walk(step.otherwise))
        elif isinstance(step, SplitStep):
            out.extend(walk(step.steps))
    return out
