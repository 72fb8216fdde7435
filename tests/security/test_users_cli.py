"""``esb users``: bootstrap by the OS user, roles with scopes, grants, API tokens printed once and used as ESB_TOKEN."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

import esb.cli.users  # noqa: F401  (registers the command until esb/cli/__init__.py imports it)
from esb.cli import main_group
from esb.journal import database

PASSWORD = "correct horse battery"


class Cli:
    def __init__(self, url: str, tmp_path: Path) -> None:
        self.env: dict[str, str | None] = {
            "ESB_DB_URL": url, "ESB_DATA_DIR": str(tmp_path / "var"), "ESB_ROUTES": str(tmp_path / "routes"),
            "ESB_CONFIG": None, "ESB_ACTOR": "root", "ESB_TOKEN": None, "ESB_ADMIN_DENY": None,
        }  # fmt: skip

    def __call__(self, *args: str, stdin: str | None = None, **env: str | None) -> Result:
        runner = CliRunner(env={**self.env, **env})
        return runner.invoke(main_group, list(args), input=stdin, catch_exceptions=False)

    def json(self, *args: str, **env: str | None) -> Any:
        result = self("--json", *args, **env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


def test_bootstrap_roles_grants_and_tokens(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/var/esb.db"
    cli = Cli(url, tmp_path)
    assert cli("db", "upgrade").exit_code == 0
    first = cli("--json", "users", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["roles"] == "admin" and "first user" in first.stderr
    refused = cli("users", "list")  # from now on the OS user is nobody here
    assert refused.exit_code == 1 and "'root' may not users.manage (not a known user)" in refused.stderr

    as_alice = {"ESB_ACTOR": "alice"}
    roles = cli("users", "roles", "set", "ct-viewer", "--permissions", "dicom.query,dicom.retrieve",
                "--modalities", "ct, mr", "--departments", "Radiology", **as_alice)  # fmt: skip
    assert roles.exit_code == 0 and "modalities=CT,MR departments=RADIOLOGY" in roles.stdout
    bad = cli("users", "roles", "set", "x", "--permissions", "dicom.qeury", **as_alice)
    assert bad.exit_code == 2 and "unknown permission 'dicom.qeury'" in bad.stderr
    system = cli("--json", "users", "add", "pacs1", "--system", "--fingerprint", "AB" * 32, **as_alice)
    assert system.exit_code == 0 and json.loads(system.stdout)["certificate"] == f"sha256:{'ab' * 32}"
    assert cli("users", "add", "pacs2", "--subject", "CN=x", **as_alice).exit_code == 2  # needs --system
    assert cli("users", "grant", "ct-viewer", "pacs1", **as_alice).exit_code == 0
    listed = {u["name"]: u for u in cli.json("users", "list", **as_alice)}
    assert listed["pacs1"]["roles"] == "ct-viewer" and listed["alice"]["password"] is True

    made = cli.json("users", "token", "create", "alice", "--expires", "90d", "--label", "ops script", **as_alice)
    token = made["token"]
    assert token.startswith("esb_") and token not in json.dumps(cli.json("users", "token", "list", **as_alice))
    via_token = cli("users", "list", ESB_ACTOR="root", ESB_TOKEN=token)
    assert via_token.exit_code == 0 and "pacs1" in via_token.stdout
    assert cli("users", "token", "revoke", made["id"], **as_alice).exit_code == 0
    assert cli("users", "list", ESB_TOKEN=token).exit_code == 1

    changed = cli("users", "passwd", "alice", "--password-stdin", stdin="another long password\n", **as_alice)
    assert changed.exit_code == 0
    assert cli("users", "revoke", "ct-viewer", "pacs1", **as_alice).exit_code == 0
    assert cli("users", "disable", "pacs1", **as_alice).exit_code == 0
    assert cli.json("users", "list", **as_alice)[1]["disabled"] is True
    assert cli("users", "grant", "ct-viewer", "ghost", **as_alice).exit_code == 2
    engine = database.make_engine(url)
    try:
        from esb.security.users import UserStore

        assert UserStore(engine).login("alice", "another long password").name == "alice"
    finally:
        engine.dispose()
