"""Audit trail settings: the Audit Record Repository, TLS files, site, retention.

Loaded from ``config/audit.yaml`` (or ``ESB_AUDIT_CONFIG``); every value can
come from the environment (``${ESB_AUDIT_REPOSITORY:-}``) and a wrong one is
reported with file:line:column like every config file of the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from esb.errors import LintError
from esb.settings import PACKAGE_ROOT
from esb.yamlnodes import read_config

DEFAULT_FILE = PACKAGE_ROOT / "config" / "audit.yaml"
SCHEMES = {"syslog+tls": 6514, "syslog+udp": 514}
KEYS = (
    "repository", "certfile", "keyfile", "cafile", "site_id", "source_id", "app_name", "hostname", "retention",
    "batch", "retry_delay", "retry_max_delay", "connect_timeout",
)  # fmt: skip


@dataclass(frozen=True)
class Repository:
    """Where the ARR listens: ``syslog+tls://host:6514`` (RFC 5425) or ``syslog+udp://host:514`` (RFC 5426)."""

    transport: str  # tls | udp
    host: str
    port: int

    def __str__(self) -> str:
        return f"syslog+{self.transport}://{self.host}:{self.port}"


@dataclass(frozen=True)
class AuditConfig:
    #: None: records are stored locally only (searchable, never sent)
    repository: Repository | None = None
    certfile: str = ""
    keyfile: str = ""
    #: CA file the repository's certificate must chain to; empty: the system's CAs
    cafile: str = ""
    #: AuditEnterpriseSiteID; empty: left out
    site_id: str = ""
    #: AuditSourceID; empty: the engine's node id
    source_id: str = ""
    #: syslog APP-NAME
    app_name: str = "ATNA"
    #: syslog HOSTNAME; empty: this machine's name
    hostname: str = ""
    #: seconds sent records are kept here (unsent ones are kept until sent)
    retention: float = 400 * 86400.0
    batch: int = 100
    retry_delay: float = 1.0
    retry_max_delay: float = 300.0
    connect_timeout: float = 10.0


def parse_repository(text: str) -> Repository | None:
    """``syslog+tls://host:port``; empty: None; anything else: ValueError naming what is allowed."""
    text = text.strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"repository must be syslog+tls://host:port or syslog+udp://host:port (got '{text}')")
    if not parts.hostname:
        raise ValueError(f"repository '{text}' names no host")
    try:
        port = parts.port or SCHEMES[parts.scheme]
    except ValueError:
        raise ValueError(f"repository '{text}' has no valid port") from None
    return Repository(parts.scheme.split("+", 1)[1], parts.hostname, port)


def load_audit_config(path: Path | None = None) -> AuditConfig:
    file = Path(path or os.environ.get("ESB_AUDIT_CONFIG") or DEFAULT_FILE)
    if not file.exists():
        return AuditConfig()
    nodes, keys = read_config(file, "audit", KEYS, title="audit")
    values: dict[str, object] = {}
    for name in ("certfile", "keyfile", "cafile", "site_id", "source_id", "app_name", "hostname"):
        if name in keys:
            values[name] = nodes.string(keys[name][1], name) or ""
    if "repository" in keys:
        node = keys["repository"][1]
        try:
            values["repository"] = parse_repository(nodes.string(node, "repository") or "")
        except ValueError as exc:
            nodes.error(node, str(exc))
    for name in ("retention", "retry_delay", "retry_max_delay", "connect_timeout"):
        if name in keys:
            values[name] = nodes.duration(keys[name][1], name)
    if "batch" in keys:
        values["batch"] = nodes.integer(keys["batch"][1], "batch", minimum=1)
    if values.get("keyfile") and not values.get("certfile"):
        nodes.error(keys["keyfile"][1], "keyfile needs certfile (the client certificate it belongs to)")
    if nodes.errors:
        raise LintError(nodes.errors)
    return AuditConfig(**{k: v for k, v in values.items() if v is not None or k == "repository"})  # type: ignore[arg-type]
