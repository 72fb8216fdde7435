"""DICOM archive settings: remote AEs, storage, study completion, XDS-I and the on-demand cache.

Loaded from ``config/dicom.yaml`` (or ``ESB_DICOM_CONFIG``); wrong values are
reported with file:line:column like every config file of the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from esb.errors import LintError
from esb.settings import PACKAGE_ROOT
from esb.yamlnodes import read_config

DEFAULT_FILE = PACKAGE_ROOT / "config" / "dicom.yaml"


@dataclass(frozen=True)
class RemoteAe:
    """A peer we call: C-MOVE destination, collection source, on-demand origin."""

    ae_title: str
    host: str
    port: int
    #: the peer's DICOMweb root (WADO-RS/QIDO-RS), when it has one
    dicomweb: str = ""


@dataclass(frozen=True)
class DicomConfig:
    remote_aes: dict[str, RemoteAe] = field(default_factory=dict)
    #: instance storage directory; None: <data_dir>/dicom
    storage: Path | None = None
    #: seconds without a new instance after which a study is complete
    study_complete_after: float = 60.0
    xdsi_enabled: bool = True
    wado_base: str = "http://127.0.0.1:8080/dicomweb"
    #: seconds an on-demand copy stays cached
    cache_expiry: float = 7 * 86400.0
    #: transfer syntax UID instances are stored in (a lossless or uncompressed one); empty: as received
    store_as: str = ""


def load_dicom_config(path: Path | None = None) -> DicomConfig:
    file = Path(path or os.environ.get("ESB_DICOM_CONFIG") or DEFAULT_FILE)
    if not file.exists():
        return DicomConfig()
    nodes, keys = read_config(
        file,
        "dicom",
        ["remote_aes", "storage", "study_complete_after", "xdsi", "cache_expiry", "store_as"],
        title="DICOM",
    )
    values: dict[str, object] = {}
    if "remote_aes" in keys:
        remotes: dict[str, RemoteAe] = {}
        for name, node in nodes.mapping(keys["remote_aes"][1], "remote_aes", ()).items():
            fields = nodes.string_map(node[1], f"remote_aes.{name}")
            try:
                remotes[name] = RemoteAe(name, fields["host"], int(fields["port"]), fields.get("dicomweb", ""))
            except (KeyError, ValueError):
                example = "{host: 127.0.0.1, port: 4242}"
                nodes.error(node[1], f"remote_aes.{name} needs host and a numeric port, e.g. {example}")
        values["remote_aes"] = remotes
    if "storage" in keys:
        storage = nodes.string(keys["storage"][1], "storage")
        values["storage"] = Path(storage) if storage else None
    for name in ("study_complete_after", "cache_expiry"):
        if name in keys:
            values[name] = nodes.duration(keys[name][1], name)
    if "store_as" in keys:
        store_as = nodes.string(keys["store_as"][1], "store_as") or ""
        try:
            from profiles.dicom.transcode import TranscodePolicy

            TranscodePolicy(store_as=store_as)
        except ValueError as exc:
            nodes.error(keys["store_as"][1], f"store_as: {exc} (e.g. 1.2.840.10008.1.2.4.80, JPEG-LS lossless)")
        values["store_as"] = store_as
    if "xdsi" in keys:
        xdsi = nodes.mapping(keys["xdsi"][1], "xdsi", ["enabled", "wado_base"])
        if "enabled" in xdsi:
            values["xdsi_enabled"] = nodes.boolean(xdsi["enabled"][1], "xdsi.enabled")
        if "wado_base" in xdsi:
            values["wado_base"] = nodes.string(xdsi["wado_base"][1], "xdsi.wado_base")
    if nodes.errors:
        raise LintError(nodes.errors)
    return DicomConfig(**{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]
