"""``esb docs``: the adapter reference generated from each adapter's Options dataclass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Cli


@pytest.fixture
def cli(make_cli: Callable[[str], Cli], tmp_path: Path) -> Cli:
    return make_cli(f"sqlite:///{tmp_path}/unused.db")


@pytest.mark.parametrize(
    ("scheme", "summary", "uri", "roles", "name_default"),
    [
        ("direct", "Call another route in-line", "direct:NAME", "from and to", "(required)"),
        ("seda", "Hand a message durably to another route", "seda:NAME", "from and to", "(required)"),
        ("dead-letter", "Park failed messages", "dead-letter:NAME", "to", "default"),
    ],
)
def test_reference_of_one_adapter(cli: Cli, scheme: str, summary: str, uri: str, roles: str, name_default: str) -> None:
    result = cli("docs", scheme)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{scheme}: {summary}")
    assert lines[1:3] == [f"uri: {uri}", f"used in: {roles}"]
    assert lines[4].split() == ["option", "type", "default", "description"]
    assert lines[6].split()[:3] == ["name", "str", name_default]

    reference = cli.json("docs", scheme)
    assert (reference["scheme"], reference["uri"]) == (scheme, uri)
    (option,) = reference["options"]
    assert option["name"] == "name" and option["type"] == "str" and option["doc"]
    assert option["required"] is (name_default == "(required)")

    markdown = cli("docs", "--markdown", scheme).stdout
    assert markdown.startswith(f"## `{scheme}:`\n\n{summary}")
    assert f"URI: `{uri}`" in markdown
    assert "| Option | Type | Default | Description |" in markdown
    assert f"| `name` | str | {'*required*' if option['required'] else '`default`'} | {option['doc']} |" in markdown


def test_without_a_scheme_lists_every_loadable_adapter(cli: Cli) -> None:
    result = cli("docs")
    assert result.exit_code == 0
    schemes = {line.split()[0] for line in result.stdout.splitlines()[2:]}
    assert {"direct", "seda", "dead-letter"} <= schemes
    listed = {r["scheme"]: r for r in cli.json("docs")}
    assert listed["seda"]["summary"].startswith("Hand a message durably")
    markdown = cli("docs", "--markdown").stdout
    assert markdown.startswith("# Adapters\n")
    assert all(f"## `{s}:`" in markdown for s in ("direct", "seda", "dead-letter"))


def test_unknown_scheme_is_exit_1_with_a_suggestion(cli: Cli) -> None:
    result = cli("docs", "sedaa")
    assert result.exit_code == 1
    assert result.stderr.strip() == "esb: no adapter for scheme 'sedaa' (did you mean 'seda'?)"
    result = cli("docs", "zzz")
    assert result.exit_code == 1 and "no adapter for scheme 'zzz' (known: " in result.stderr


def test_docs_adapters_md_is_what_esb_docs_prints(cli: Cli) -> None:
    """docs/adapters.md is generated (`esb docs --markdown > docs/adapters.md`): it must not drift from the code."""
    from esb.settings import PACKAGE_ROOT

    shipped = (PACKAGE_ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
    assert cli("docs", "--markdown").stdout == shipped, "run: esb docs --markdown > docs/adapters.md"
