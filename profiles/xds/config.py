"""XDS settings: home community, registry code sets and limits, repository identity and storage.

Loaded from ``config/xds.yaml`` (or ``ESB_XDS_CONFIG``); like every config file
of the engine, each value may come from an environment variable, and a wrong
value is reported with file:line:column.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from esb.errors import LintError
from esb.settings import PACKAGE_ROOT
from esb.yamlnodes import read_config

DEFAULT_FILE = PACKAGE_ROOT / "config" / "xds.yaml"


@dataclass(frozen=True)
class XdsConfig:
    #: homeCommunityId put on answers (urn:oid:...)
    home_community_id: str = "urn:oid:1.2.156.112.9999.2"
    #: affinity-domain code sets file; None: any code is accepted
    code_sets: Path | None = None
    #: ITI-18: more objects than this -> XDSTooManyResults
    max_results: int = 10000
    #: this repository's repositoryUniqueId (an OID)
    repository_unique_id: str = "1.2.156.112.9999.3.1"
    #: document storage directory; None: <data_dir>/documents
    storage: Path | None = None
    #: ITI-42 endpoint of a remote registry; empty: the registry hosted on this bus
    registry_url: str = ""


def load_xds_config(path: Path | None = None) -> XdsConfig:
    file = Path(path or os.environ.get("ESB_XDS_CONFIG") or DEFAULT_FILE)
    if not file.exists():
        return XdsConfig()
    nodes, keys = read_config(file, "xds", ["home_community_id", "registry", "repository"], title="XDS")
    values: dict[str, object] = {}
    if "home_community_id" in keys:
        values["home_community_id"] = nodes.string(keys["home_community_id"][1], "home_community_id")
    if "registry" in keys:
        registry = nodes.mapping(keys["registry"][1], "registry", ["code_sets", "max_results"])
        if "code_sets" in registry:
            code_sets = nodes.string(registry["code_sets"][1], "code_sets")
            values["code_sets"] = Path(code_sets) if code_sets else None
        if "max_results" in registry:
            values["max_results"] = nodes.integer(registry["max_results"][1], "max_results", minimum=1)
    if "repository" in keys:
        repository = nodes.mapping(keys["repository"][1], "repository", ["unique_id", "storage", "registry"])
        if "unique_id" in repository:
            values["repository_unique_id"] = nodes.string(repository["unique_id"][1], "unique_id")
        if "storage" in repository:
            storage = nodes.string(repository["storage"][1], "storage")
            values["storage"] = Path(storage) if storage else None
        if "registry" in repository:
            values["registry_url"] = nodes.string(repository["registry"][1], "registry") or ""
    if nodes.errors:
        raise LintError(nodes.errors)
    return XdsConfig(**{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]
