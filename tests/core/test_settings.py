"""Config loading: defaults, environment overrides, errors with positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.errors import LintError
from esb.interpolate import InterpolationError, interpolate
from esb.settings import load_settings


def test_defaults_are_the_embedded_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ESB_DATA_DIR", "ESB_DB_URL", "ESB_HTTP_PORT", "ESB_MLLP_PORT", "ESB_DICOM_PORT", "ESB_ROUTES"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.db_url == "sqlite:///./var/esb.db"
    assert (settings.http_port, settings.mllp_port, settings.dicom_port) == (8080, 2575, 11112)
    assert settings.dicom_ae_title == "ESB"
    assert settings.route_paths == (Path("routes"),)
    assert settings.retention == 30 * 86400


def test_environment_overrides_every_port_and_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESB_HTTP_PORT", "18080")
    monkeypatch.setenv("ESB_MLLP_PORT", "12575")
    monkeypatch.setenv("ESB_DICOM_PORT", "21112")
    monkeypatch.setenv("ESB_DATA_DIR", "/srv/esb2")
    monkeypatch.delenv("ESB_DB_URL", raising=False)
    settings = load_settings()
    assert (settings.http_port, settings.mllp_port, settings.dicom_port) == (18080, 12575, 21112)
    assert settings.data_dir == Path("/srv/esb2")
    assert settings.db_url == "sqlite:////srv/esb2/esb.db"


def test_bad_value_is_reported_at_its_position(tmp_path: Path) -> None:
    config = tmp_path / "esb.yaml"
    config.write_text("engine:\n  log_format: xml\nlisten:\n  http_port: eighty\n  htp_port: 1\n")
    with pytest.raises(LintError) as caught:
        load_settings(config)
    text = str(caught.value)
    assert f"{config}:2:15: engine.log_format must be text|json (got 'xml')" in text
    assert f"{config}:4:14: listen.http_port must be a whole number (got 'eighty')" in text
    assert f"{config}:5:3: listen: unknown key 'htp_port' (did you mean 'http_port'?)" in text


def test_interpolation() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("x${A}y", env) == "x1y"
    assert interpolate("${B:-dflt}", env) == "dflt"
    assert interpolate("${EMPTY:-dflt}", env) == "dflt"
    assert interpolate("$${A}", env) == "${A}"
    with pytest.raises(InterpolationError, match=r"'B' is not set \(set it, or write \$\{B:-default\}\)"):
        interpolate("${B}", env)
