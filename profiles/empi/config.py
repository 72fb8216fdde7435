"""EMPI settings: the master domain, domain policy, matching model, source trust.

Loaded from ``config/empi.yaml`` (or ``ESB_EMPI_CONFIG``); every value there is
an environment variable with a default, like the engine's own config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from esb.errors import LintError
from esb.settings import PACKAGE_ROOT
from esb.yamlnodes import read_config
from profiles.empi.model import Domain

DEFAULT_FILE = PACKAGE_ROOT / "config" / "empi.yaml"


@dataclass(frozen=True)
class EmpiConfig:
    #: the affinity domain of master IDs (XDS patient IDs are in it)
    master_domain: Domain = Domain("EMPI", "1.2.156.112.9999.1.1", "ISO")
    #: unknown assigning authorities: auto-register (default) or refuse with AE 204
    strict_domains: bool = False
    #: matching model file (None: the shipped default model)
    matching_model: Path | None = None
    #: at most this many candidates are scored per incoming record
    candidate_limit: int = 200
    #: source system -> rank for the golden record (higher wins)
    trust: dict[str, int] = field(default_factory=dict)
    #: listeners file (A1.14)
    listeners_file: Path | None = None
    #: ITI-9 for an identifier unknown in a known domain: "error" (AE, ERR 204: IHE TF case 3)
    #: or "nf" (AA with QAK NF, for consumers that expect it)
    pix_unknown_patient: str = "error"
    #: per-deployment code map files or folders of *.yaml, loaded after the shipped code sets (A1.11)
    code_maps: tuple[Path, ...] = ()


def load_empi_config(path: Path | None = None) -> EmpiConfig:
    file = Path(path or os.environ.get("ESB_EMPI_CONFIG") or DEFAULT_FILE)
    if not file.exists():
        return EmpiConfig()
    nodes, keys = read_config(
        file,
        "empi",
        [
            "master_domain",
            "strict_domains",
            "matching_model",
            "candidate_limit",
            "trust",
            "listeners",
            "pix_unknown_patient",
            "code_maps",
        ],
        title="EMPI",
    )
    config = EmpiConfig()
    values: dict[str, object] = {}
    if "master_domain" in keys:
        domain = nodes.string_map(keys["master_domain"][1], "master_domain")
        values["master_domain"] = Domain(
            domain.get("namespace", ""), domain.get("universal_id", ""), domain.get("universal_id_type", "ISO")
        )
    if "strict_domains" in keys:
        values["strict_domains"] = nodes.boolean(keys["strict_domains"][1], "strict_domains")
    if "matching_model" in keys:
        model = nodes.string(keys["matching_model"][1], "matching_model")
        values["matching_model"] = Path(model) if model else None
    if "candidate_limit" in keys:
        values["candidate_limit"] = nodes.integer(keys["candidate_limit"][1], "candidate_limit", minimum=1)
    if "trust" in keys:
        trust = nodes.string_map(keys["trust"][1], "trust")
        try:
            values["trust"] = {k: int(v) for k, v in trust.items()}
        except ValueError:
            nodes.error(keys["trust"][1], "trust ranks must be whole numbers")
    if "pix_unknown_patient" in keys:
        values["pix_unknown_patient"] = nodes.choice(
            keys["pix_unknown_patient"][1], "pix_unknown_patient", ["error", "nf"]
        )
    if "code_maps" in keys:
        paths = (nodes.string(item, "code_maps item") for item in nodes.sequence(keys["code_maps"][1], "code_maps"))
        values["code_maps"] = tuple(Path(p) for p in paths if p)
    if "listeners" in keys:
        listeners = nodes.string(keys["listeners"][1], "listeners")
        values["listeners_file"] = Path(listeners) if listeners else None
    if nodes.errors:
        raise LintError(nodes.errors)
    return EmpiConfig(**{**config.__dict__, **{k: v for k, v in values.items() if v is not None}})
