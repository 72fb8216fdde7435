"""EMPI listeners (A1.12-A1.16): who hears about which patient events, in what format.

A listener is a destination URI (mllp:, http:, file:, table:, stomp: ...) with a
format and an event filter, configured in a file (``config/listeners.yaml``).
Each event becomes a queued delivery in the journal, committed with the
message that caused it, so every listener's deliveries are journaled with
their status, retried, dead-lettered and resendable one by one
(``esb listeners deliveries|resend``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from esb.errors import ConfigError, LintError
from esb.journal import NewDelivery
from esb.routes.model import RetryPolicy
from esb.uri import UriError, parse_uri
from esb.yamlnodes import Nodes
from profiles.empi import codec
from profiles.empi.events import EVENT_KINDS, EmpiEvent

FORMATS = ("json", "hl7v2", "iti10")

#: event -> HL7 v2 message bytes, for the hl7v2 and iti10 formats (set by the HL7 face)
Hl7Formatter = Callable[[EmpiEvent, "Listener"], bytes | None]


@dataclass(frozen=True)
class Listener:
    name: str
    uri: str
    format: str = "json"
    events: tuple[str, ...] = EVENT_KINDS
    #: identifier domains (assigning authority keys or namespaces) to include; empty: all
    domains: tuple[str, ...] = ()
    enabled: bool = True
    retry: RetryPolicy = RetryPolicy(max_attempts=20, delay=2.0, multiplier=2.0, max_delay=600.0)


def load_listeners(path: Path) -> list[Listener]:
    """Read a listeners file; errors name file:line:col like route files."""
    if not path.exists():
        return []
    nodes = Nodes(str(path))
    root = nodes.compose(path.read_text(encoding="utf-8"))
    if root is None:
        if nodes.errors:
            raise LintError(nodes.errors)
        return []
    top = nodes.mapping(root, "listeners file", ["listeners"])
    out: list[Listener] = []
    names: set[str] = set()
    for item in nodes.sequence(top["listeners"][1], "listeners") if "listeners" in top else []:
        keys = nodes.mapping(
            item, "listener", ["name", "uri", "format", "events", "domains", "enabled"], ["name", "uri"]
        )
        name = nodes.string(keys["name"][1], "name") if "name" in keys else None
        uri = nodes.string(keys["uri"][1], "uri") if "uri" in keys else None
        if name and name in names:
            nodes.error(keys["name"][1], f"duplicate listener name '{name}'")
        if uri:
            try:
                parse_uri(uri)
            except UriError as exc:
                nodes.error(keys["uri"][1], str(exc))
        fmt = nodes.choice(keys["format"][1], "format", list(FORMATS)) if "format" in keys else "json"
        events = _names(nodes, keys.get("events"), "events", EVENT_KINDS)
        domains = _names(nodes, keys.get("domains"), "domains", None)
        enabled = nodes.boolean(keys["enabled"][1], "enabled") if "enabled" in keys else True
        if name and uri and fmt:
            names.add(name)
            out.append(Listener(name, uri, fmt, events or EVENT_KINDS, domains, enabled is not False))
    if nodes.errors:
        raise LintError(nodes.errors)
    return out


def _names(
    nodes: Nodes, entry: tuple[yaml.Node, yaml.Node] | None, what: str, allowed: Sequence[str] | None
) -> tuple[str, ...]:
    if entry is None:
        return ()
    values: list[str] = []
    for node in nodes.sequence(entry[1], what):
        value = nodes.choice(node, what, list(allowed)) if allowed else nodes.string(node, what)
        if value:
            values.append(value)
    return tuple(values)


def event_json(event: EmpiEvent, listener: Listener) -> bytes:
    identifiers = [
        codec.identifier_to_json(i)
        for i in event.identifiers
        if not listener.domains or {i.domain.key, i.domain.namespace} & set(listener.domains)
    ]
    payload = {
        "event": event.kind,
        "person_id": event.person_id,
        "patient": codec.identifier_to_json(event.patient),
        "identifiers": identifiers,
        "other": codec.identifier_to_json(event.other) if event.other else None,
        "record": codec.to_json(event.record, with_derived=False),
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")


def deliveries_for(
    events: Sequence[EmpiEvent], listeners: Sequence[Listener], hl7: Hl7Formatter | None = None
) -> list[NewDelivery]:
    """The queued deliveries that tell each interested listener about each event."""
    out: list[NewDelivery] = []
    for event in events:
        for listener in listeners:
            if not listener.enabled or event.kind not in listener.events:
                continue
            if listener.format == "json":
                body: bytes | None = event_json(event, listener)
                content_type = "application/json"
            else:
                if hl7 is None:
                    raise ConfigError(f"listener '{listener.name}': format {listener.format} needs the HL7 face")
                body = hl7(event, listener)
                content_type = "application/hl7-v2"
            if body is None:
                continue
            headers = {
                "empi-listener": listener.name,
                "empi-event": event.kind,
                "content-type": content_type,
            }
            if event.person_id:
                headers["empi-person"] = event.person_id
            out.append(NewDelivery(destination=listener.uri, body=body, headers=headers, retry=listener.retry))
    return out
