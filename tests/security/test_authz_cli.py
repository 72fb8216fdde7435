"""ACCEPTANCE (issue 7): every admin operation refuses a user without the permission, and the refusal is audited.

The commands are found by walking the ``esb`` click group, so a command added
later is checked without touching this file: each is run, with arguments made
from its own parameter types, as a known user who holds no role for it; it must
exit 1 with "'nobody' may not PERMISSION" and leave a captured admin_operation
refusal for that user and permission. Only the commands in :data:`NEED_NO_PERMISSION`
are left out, each with the reason.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from esb.audit import clear_captured
from esb.audit.schema import records
from esb.cli import main_group
from tests.security import users_support
from tests.security.users_support import UsersDb, open_users_db, refusals

#: shared fixtures (no conftest here: another helper's tests share this directory)
_upgraded_db = users_support._upgraded_db

#: command modules the lead registers in esb/cli/__init__.py; imported here so the walk sees them already
for _module in ("users", "audit", "certs"):
    with contextlib.suppress(ImportError):
        importlib.import_module(f"esb.cli.{_module}")

NEED_NO_PERMISSION = {
    "docs": "prints the adapters' reference documentation: no deployment data",
    "lint": "checks route files as the engine would: no database, no patient data",
    "version": "prints the engine version",
    "test": "runs route test files offline: no journal, no database, no peer",
    "run": "is the engine itself; it authenticates and authorizes its callers",
    "certs show": "prints what a certificate file on this machine says: no deployment data, no database",
}


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def sample(param: click.Parameter, tmp_path: Path) -> str:
    """A value of the parameter's type that click accepts (what the command would do with it does not matter:
    authorization comes first)."""
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.Path):
        if kind.dir_okay and not kind.file_okay:
            return str(tmp_path)
        existing = tmp_path / "sample.yaml"
        existing.write_text("{}\n", encoding="utf-8")
        return str(existing)
    if isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        return "1"
    if kind.name in ("date", "time", "duration"):
        return "2026-11-29" if kind.name == "date" else "1h"
    return "x1"


def arguments(command: click.Command, tmp_path: Path) -> list[str]:
    found: list[str] = []
    for param in command.params:
        if isinstance(param, click.Argument) and (param.required or param.nargs == -1):
            found.extend(sample(param, tmp_path) for _ in range(max(param.nargs, 1)))
        elif isinstance(param, click.Option) and param.required:
            found.extend([param.opts[0], sample(param, tmp_path)])
    return found


ALL = list(commands(main_group))


def test_the_walk_finds_the_admin_commands() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"empi merge", "messages show", "users add", "users token create", "xds deprecate", "replay"} <= names
    assert set(NEED_NO_PERMISSION) <= names


@pytest.fixture(scope="module")
def users_db(_upgraded_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsersDb]:
    """One database for the walk: an administrator, and 'nobody', who holds a role but none for admin work."""
    found = open_users_db(_upgraded_db, tmp_path_factory.mktemp("walk"))
    store = found.store
    store.add_user("admin")
    store.save_role("admin", ["*"])
    store.grant("admin", "admin")
    store.add_user("nobody")
    store.save_role("query-only", ["pix.query", "dicom.query"])
    store.grant("query-only", "nobody")
    try:
        yield found
    finally:
        found.engine.dispose()


@pytest.mark.parametrize("path", [p for p, _ in ALL if " ".join(p) not in NEED_NO_PERMISSION], ids=" ".join)
def test_admin_command_refuses_a_user_without_the_permission(
    path: tuple[str, ...], users_db: UsersDb, tmp_path: Path
) -> None:
    command = dict(ALL)[path]
    env = {"ESB_DB_URL": users_db.url, "ESB_ROUTES": str(tmp_path / "routes"), "ESB_DATA_DIR": str(tmp_path / "var"),
           "ESB_CONFIG": None, "ESB_ACTOR": "nobody", "ESB_TOKEN": None, "ESB_ADMIN_DENY": None}  # fmt: skip
    clear_captured()
    result = CliRunner(env=env).invoke(main_group, [*path, *arguments(command, tmp_path)], catch_exceptions=False)
    assert result.exit_code == 1, result.output
    said = re.search(r"'nobody' may not ([a-z]+\.[a-z]+)", result.stderr)
    assert said is not None, result.output
    refused = refusals("nobody", said.group(1))
    assert refused, f"no audited refusal of {said.group(1)} for 'nobody'"
    # stored in the database's audit trail before the command ended, not only held in memory
    with users_db.engine.connect() as conn:
        stored = set(conn.scalars(select(records.c.id).where(records.c.id.in_([e.record_id for e in refused]))))
    assert stored == {e.record_id for e in refused}
    assert result.stdout == ""
