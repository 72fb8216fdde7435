"""Engine settings from ``config/default.yaml``, a deployment file, and the environment.

The file is interpolated node by node (``${ESB_HTTP_PORT:-8080}``), so every value
is overridable by environment and a bad value is reported at its file:line:col.
Settings never hold state of the node beyond where its database and data are:
several engines sharing one database and broker serve one region.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from esb.errors import ConfigError, LintError
from esb.uri import Duration, UriError
from esb.yamlnodes import Nodes

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PACKAGE_ROOT / "config" / "default.yaml"


@dataclass(frozen=True)
class Settings:
    node_id: str
    data_dir: Path
    log_level: str
    log_format: str
    shutdown_timeout: float
    db_url: str
    db_auto_upgrade: bool
    retention: float | None
    listen_host: str
    http_port: int
    mllp_port: int
    dicom_port: int
    dicom_ae_title: str
    route_paths: tuple[Path, ...]
    delivery_workers: int = 4
    delivery_batch: int = 32
    delivery_poll: float = 0.5
    delivery_lease: float = 300.0
    config_file: Path = field(default=DEFAULT_CONFIG)
    #: TLS of the engine's HTTP port (admin endpoints, and SOAP/DICOMweb routes mounted there); no certfile: plain
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_cafile: str | None = None
    tls_client_auth: str = "none"
    tls_peers: tuple[str, ...] = ()

    @property
    def spool_dir(self) -> Path:
        """Where adapters stream large parts (MTOM attachments); the journal deletes them with their message."""
        return self.data_dir / "spool"


TLS_KEYS = ("tls_certfile", "tls_keyfile", "tls_cafile", "tls_client_auth", "tls_peers")
_SCHEMA: dict[str, tuple[str, ...]] = {
    "engine": ("node_id", "data_dir", "log_level", "log_format", "shutdown_timeout"),
    "storage": ("url", "auto_upgrade", "retention"),
    "listen": ("host", "http_port", "mllp_port", "dicom_port", "dicom_ae_title", *TLS_KEYS),
    "routes": ("paths",),
    "delivery": ("workers", "batch", "poll_interval", "lease"),
}


def _default_node_id(http_port: int) -> str:
    """Stable across restarts (so a restarted node takes its own claims back at once)
    and distinct for two instances on one host (they differ in HTTP port)."""
    return f"{socket.gethostname()}:{http_port}"


def load_settings(path: Path | None = None) -> Settings:
    """Read a config file (default: the shipped one); raises LintError with positions."""
    file = Path(path or os.environ.get("ESB_CONFIG") or DEFAULT_CONFIG)
    nodes = Nodes(str(file))
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from None
    root = nodes.compose(text)
    if root is None:
        raise LintError(nodes.errors or [ConfigError("config file is empty", None)])
    values: dict[str, dict[str, tuple[yaml.Node, str]]] = {}
    for section, (_, section_node) in nodes.mapping(root, "config", _SCHEMA).items():
        entries = nodes.mapping(section_node, section, _SCHEMA[section])
        values[section] = {}
        for key, (_, value_node) in entries.items():
            text_value = nodes.string(value_node, f"{section}.{key}")
            if text_value is not None:
                values[section][key] = (value_node, text_value)

    def get(section: str, key: str, default: str) -> tuple[yaml.Node | None, str]:
        node, value = values.get(section, {}).get(key, (None, default))
        return node, value

    def integer(section: str, key: str, default: str) -> int:
        node, value = get(section, key, default)
        try:
            number = int(value)
            if not 0 <= number <= 65535 and key.endswith("port"):
                raise ValueError
            return number
        except ValueError:
            if node is not None:
                nodes.error(node, f"{section}.{key} must be a whole number (got '{value}')")
            return 0

    def duration(section: str, key: str, default: str) -> float:
        node, value = get(section, key, default)
        try:
            return float(Duration.parse(value))
        except UriError as exc:
            if node is not None:
                nodes.error(node, f"{section}.{key}: {exc}")
            return 0.0

    data_dir = Path(get("engine", "data_dir", "./var")[1])
    log_format_node, log_format = get("engine", "log_format", "text")
    if log_format not in ("text", "json") and log_format_node is not None:
        nodes.error(log_format_node, f"engine.log_format must be text|json (got '{log_format}')")
    retention_text = get("storage", "retention", "")[1]
    route_paths = tuple(Path(p.strip()) for p in get("routes", "paths", "routes")[1].split(",") if p.strip())
    settings = Settings(
        node_id=get("engine", "node_id", "")[1] or _default_node_id(integer("listen", "http_port", "8080")),
        data_dir=data_dir,
        log_level=get("engine", "log_level", "info")[1].upper(),
        log_format=log_format,
        shutdown_timeout=duration("engine", "shutdown_timeout", "30s"),
        db_url=get("storage", "url", f"sqlite:///{data_dir}/esb.db")[1],
        db_auto_upgrade=get("storage", "auto_upgrade", "true")[1].lower() in ("true", "1", "yes"),
        retention=duration("storage", "retention", retention_text) if retention_text else None,
        listen_host=get("listen", "host", "127.0.0.1")[1],
        http_port=integer("listen", "http_port", "8080"),
        mllp_port=integer("listen", "mllp_port", "2575"),
        dicom_port=integer("listen", "dicom_port", "11112"),
        dicom_ae_title=get("listen", "dicom_ae_title", "ESB")[1],
        route_paths=route_paths,
        delivery_workers=integer("delivery", "workers", "4"),
        delivery_batch=integer("delivery", "batch", "32"),
        delivery_poll=duration("delivery", "poll_interval", "500ms"),
        delivery_lease=duration("delivery", "lease", "5m"),
        config_file=file,
        **_listen_tls(nodes, values.get("listen", {})),
    )
    if nodes.errors:
        raise LintError(nodes.errors)
    return settings


def _listen_tls(nodes: Nodes, listen: dict[str, tuple[yaml.Node, str]]) -> dict[str, Any]:
    """``listen.tls_*``: TLS of the engine's HTTP port, checked here so a wrong setup stops the start with its line."""
    from esb.security.peers import peers_problem  # esb.security is not needed by settings otherwise

    text = {key: listen[key][1].strip() for key in TLS_KEYS if key in listen}
    certfile, client_auth = text.get("tls_certfile", ""), text.get("tls_client_auth", "") or "none"
    peers = tuple(p for p in (text.get("tls_peers", "")).split(",") if p.strip())
    if client_auth not in ("none", "optional", "required"):
        nodes.error(listen["tls_client_auth"][0], f"listen.tls_client_auth must be none|optional|required "
                    f"(got '{client_auth}')")  # fmt: skip
    for key in ("tls_certfile", "tls_keyfile", "tls_cafile"):
        if text.get(key) and not Path(text[key]).is_file():
            nodes.error(listen[key][0], f"listen.{key}: no such file '{text[key]}'")
    setup = [k for k in ("tls_keyfile", "tls_cafile", "tls_peers") if text.get(k)]
    if client_auth != "none":
        setup.append("tls_client_auth")
    if setup and not certfile:
        nodes.error(listen[setup[0]][0], f"listen.{setup[0]} needs listen.tls_certfile (the HTTP port serves TLS "
                    "only with a certificate)")  # fmt: skip
    if client_auth != "none" and not text.get("tls_cafile"):
        nodes.error(listen["tls_client_auth"][0], f"listen.tls_client_auth={client_auth} needs listen.tls_cafile "
                    "to verify client certificates")  # fmt: skip
    if peers:
        problem = peers_problem(peers)
        if problem:
            nodes.error(listen["tls_peers"][0], f"listen.tls_peers: {problem}")
        if client_auth != "required":
            nodes.error(listen["tls_peers"][0], "listen.tls_peers needs listen.tls_client_auth=required")
    return {
        "tls_certfile": certfile or None,
        "tls_keyfile": text.get("tls_keyfile") or None,
        "tls_cafile": text.get("tls_cafile") or None,
        "tls_client_auth": client_auth,
        "tls_peers": peers,
    }
