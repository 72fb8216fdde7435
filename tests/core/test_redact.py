"""Passwords in endpoint URIs never reach the journal, logs, metric labels or `esb routes` output."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.routes.lint import route_files
from esb.uri import redact


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("stomp://guest:guest@127.0.0.1:61613/queue/a", "stomp://guest:***@127.0.0.1:61613/queue/a"),
        ("table:t?url=postgresql+psycopg://u:p%40ss@h:5432/db&status=x", "table:t?url=postgresql+psycopg://u:***@h:5432/db&status=x"),
        ("etl:v?url=mysql+pymysql://root@127.0.0.1/test", "etl:v?url=mysql+pymysql://root@127.0.0.1/test"),
        ("table:t?url=postgresql+pyodbc:///?odbc_connect=UID%3Dpg%3BPWD%3Dsecret%3B", "table:t?url=postgresql+pyodbc:///?odbc_connect=UID%3Dpg%3BPWD%3D***%3B"),
        ("soap://h/x?wss_password=abc&x=1", "soap://h/x?wss_password=***&x=1"),
        ("stomp://h:61613/queue/a?login=u&passcode=s3cret", "stomp://h:61613/queue/a?login=u&passcode=***"),
        ("mllp://host:2575", "mllp://host:2575"),
    ],
)  # fmt: skip
def test_passwords_are_blanked_and_nothing_else_changes(uri: str, shown: str) -> None:
    assert redact(uri) == shown


def test_example_folders_under_a_route_directory_are_not_loaded(tmp_path: Path) -> None:
    """routes/examples/ holds routes to copy; they run only when named (esb lint routes/examples/)."""
    (tmp_path / "examples").mkdir()
    (tmp_path / "a.yaml").write_text("", encoding="utf-8")
    (tmp_path / "examples" / "b.yaml").write_text("", encoding="utf-8")
    assert route_files([tmp_path]) == ([tmp_path / "a.yaml"], [])
    assert route_files([tmp_path / "examples"]) == ([tmp_path / "examples" / "b.yaml"], [])
