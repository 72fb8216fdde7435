"""config/audit.yaml: the shipped file, ${ENV} overrides and errors at file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.audit.config import AuditConfig, Repository, load_audit_config
from esb.errors import LintError


def test_the_shipped_file_stores_locally_until_a_repository_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_audit_config() == AuditConfig()
    monkeypatch.setenv("ESB_AUDIT_REPOSITORY", "syslog+tls://arr.example.org")
    monkeypatch.setenv("ESB_AUDIT_SITE_ID", "REGION-7")
    monkeypatch.setenv("ESB_AUDIT_RETRY_MAX_DELAY", "30s")
    config = load_audit_config()
    assert config.repository == Repository("tls", "arr.example.org", 6514)
    assert (config.site_id, config.retry_max_delay) == ("REGION-7", 30.0)
    monkeypatch.setenv("ESB_AUDIT_REPOSITORY", "syslog+udp://127.0.0.1:5514")
    assert load_audit_config().repository == Repository("udp", "127.0.0.1", 5514)


def test_mistakes_are_reported_with_their_position(tmp_path: Path) -> None:
    path = tmp_path / "audit.yaml"
    path.write_text("repository: https://arr:6514\nretention: forever\nbacth: 10\nkeyfile: k.pem\n", encoding="utf-8")
    with pytest.raises(LintError) as raised:
        load_audit_config(path)
    text = str(raised.value)
    assert f"{path}:1:13: repository must be syslog+tls://host:port or syslog+udp://host:port" in text
    assert f"{path}:2:12: retention:" in text
    assert f"{path}:3:1: audit: unknown key 'bacth' (did you mean 'batch'?)" in text
    assert f"{path}:4:10: keyfile needs certfile" in text


def test_tls_files_that_cannot_be_loaded_stop_the_start_with_a_config_error(tmp_path: Path) -> None:
    from esb.audit.config import parse_repository
    from esb.audit.syslog import transport_for
    from esb.errors import ConfigError

    config = AuditConfig(repository=parse_repository("syslog+tls://127.0.0.1:6514"), cafile=str(tmp_path / "no-ca.pem"))
    with pytest.raises(ConfigError, match="audit: the TLS files for syslog\\+tls://127.0.0.1:6514 cannot be loaded"):
        transport_for(config)
