"""Options of ``http:`` and ``https:`` endpoints, and the lint checks on them.

One ``Options`` class per scheme serves both sides (Camel's way: one endpoint
URI, consumer and producer options side by side). Each side-specific field is
tagged ``side`` in its metadata, so lint can say "option 'method' applies to
'to' endpoints only" instead of silently ignoring it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from esb.uri import Duration

MIB = 1024 * 1024
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _meta(doc: str, side: Literal["from", "to"] | None = None) -> dict[str, str]:
    return {"doc": doc, "side": side} if side else {"doc": doc}


def _method(name: str, value: str) -> str:
    upper = value.strip().upper()
    if upper not in METHODS:
        raise ValueError(f"option '{name}' must be one of {'|'.join(METHODS)} (got '{value}')")
    return upper


@dataclass(frozen=True, kw_only=True)
class HttpOptions:
    host: str = field(default="", metadata=_meta("Address to listen on (from) or to connect to (to)."))
    port: int = field(default=80, metadata=_meta("TCP port; 0 in tests picks a free one (shared with the engine's)."))
    path: str = field(default="/", metadata=_meta("URL path served (from) or requested (to)."))
    methods: tuple[str, ...] = field(
        default=("POST", "PUT"),
        metadata=_meta("HTTP methods accepted; others get 405.", "from"),
    )
    reply: Literal["route", "accepted"] = field(
        default="route",
        metadata=_meta(
            "route: answer with the route's final message (200); accepted: answer 202 with the "
            "message id as soon as the message is journaled.",
            "from",
        ),
    )
    max_body: int = field(
        default=100 * MIB,
        metadata=_meta("Largest request body in bytes; larger ones get 413 and are not journaled.", "from"),
    )
    content_types: tuple[str, ...] = field(
        default=(),
        metadata=_meta("Accepted media types (e.g. application/json,text/*); others get 415. Empty: any.", "from"),
    )
    prefix: bool = field(default=False, metadata=_meta("Serve every path below 'path' too.", "from"))
    method: str = field(default="POST", metadata=_meta("HTTP method of the request.", "to"))
    timeout: Duration = field(
        default=Duration(30.0),
        metadata=_meta("Time allowed for the whole request; slower peers count as failed (retried).", "to"),
    )
    content_type: str | None = field(
        default=None,
        metadata=_meta(
            "Content-Type sent; default: the message's content-type header or application/octet-stream.", "to"
        ),
    )
    headers: tuple[str, ...] = field(
        default=(),
        metadata=_meta("Fixed request headers as comma-separated Name:Value pairs.", "to"),
    )
    forward_headers: tuple[str, ...] = field(
        default=(),
        metadata=_meta("Message headers sent as HTTP headers of the same name (comma list).", "to"),
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(_method("methods", m) for m in self.methods if m.strip()))
        object.__setattr__(self, "method", _method("method", self.method))
        if not self.methods:
            raise ValueError(f"option 'methods' needs at least one of {'|'.join(METHODS)}")
        if self.max_body <= 0:
            raise ValueError(f"option 'max_body' must be a positive number of bytes (got {self.max_body})")
        if self.timeout <= 0:
            raise ValueError(f"option 'timeout' must be longer than 0 (got {self.timeout}s)")
        for pair in self.headers:
            name, colon, _ = pair.partition(":")
            if not colon or not name.strip():
                raise ValueError(f"option 'headers' wants Name:Value pairs (got '{pair}')")

    @property
    def fixed_headers(self) -> dict[str, str]:
        return {n.strip(): v.strip() for n, _, v in (p.partition(":") for p in self.headers)}


def misplaced(options: Any, *, consumer: bool, where: str) -> list[str]:
    """Options set on the side that ignores them."""
    side = "from" if consumer else "to"
    problems = []
    for f in dataclasses.fields(options):
        other = f.metadata.get("side")
        if other and other != side and getattr(options, f.name) != f.default:
            problems.append(f"{where} option '{f.name}' applies to '{other}' endpoints only")
    return problems
