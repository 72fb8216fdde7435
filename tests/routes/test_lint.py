"""``esb lint``: each config mistake is reported at its exact file:line:col with a helpful message.

Every case is a small route set written to a temp directory; the same set is
linted through :func:`esb.routes.lint.lint` and through the ``esb lint`` command,
which must print exactly the same ``file:line:col: message`` lines and exit 1.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from esb.cli import main_group
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.settings import load_settings

UNSET = "ESB_LINT_TEST_NEVER_SET"
BAD_XSLT = """<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:bogus/>
</xsl:stylesheet>
"""


@dataclass(frozen=True)
class Case:
    """Files to write (relative path -> text) and the exact lines lint must print."""

    files: dict[str, str]
    #: (relative file, line, column, message)
    expected: list[tuple[str, int, int, str]]


def route(stem: str, body: str, source: str | None = None) -> str:
    """A route file with id == stem; ``body`` is the text under ``steps:`` (indented 4)."""
    head = f"route:\n  id: {stem}\n  from: {source or 'seda:' + stem}\n  steps:\n"
    return head + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


SINK = route("sink", "- log: sink", "seda:sink")

CASES: dict[str, Case] = {
    "misspelt step": Case(
        {"a.yaml": route("a", "- transfrom: {python: transforms.common:upper}")},
        [("a.yaml", 5, 7, "step: unknown key 'transfrom' (did you mean 'transform'?)")],
    ),
    "unknown route key": Case(
        {"a.yaml": "route:\n  id: a\n  from: seda:a\n  desciption: orders\n  steps: []\n"},
        [("a.yaml", 4, 3, "route: unknown key 'desciption' (did you mean 'description'?)")],
    ),
    "missing from": Case(
        {"a.yaml": "route:\n  id: a\n  steps: []\n"},
        [("a.yaml", 2, 3, "route: missing required key 'from'")],
    ),
    "unknown scheme": Case(
        {"a.yaml": route("a", "- log: x", "sead:orders")},
        [("a.yaml", 3, 9, "no adapter for scheme 'sead' (did you mean 'seda'?)")],
    ),
    "unknown option, column inside the quoted URI": Case(
        {"a.yaml": route("a", '- to: "seda:sink?nmae=x"'), "sink.yaml": SINK},
        [("a.yaml", 5, 22, "seda: unknown option 'nmae' (did you mean 'name'?)")],
    ),
    "badly typed option": Case(
        {"a.yaml": route("a", "- to: seda:sink", "timer:tick?period=5s&repeat=often"), "sink.yaml": SINK},
        [("a.yaml", 3, 30, "option 'repeat' must be a whole number (got 'often')")],
    ),
    "transform module does not import": Case(
        {"a.yaml": route("a", "- transform: {python: transforms.nosuch:fix}")},
        [("a.yaml", 5, 7, "cannot import module 'transforms.nosuch': No module named 'transforms.nosuch'")],
    ),
    "transform function does not exist": Case(
        {"a.yaml": route("a", "- transform: {python: transforms.common:uper}")},
        [("a.yaml", 5, 7, "module 'transforms.common' has no 'uper' (did you mean 'upper'?)")],
    ),
    "XSLT file missing": Case(
        {"a.yaml": route("a", "- transform: {xslt: xslt/missing.xsl}")},
        [("a.yaml", 5, 7, "XSLT file 'xslt/missing.xsl' does not exist")],
    ),
    "XSLT does not compile": Case(
        {"a.yaml": route("a", "- transform: {xslt: bad.xsl}"), "bad.xsl": BAD_XSLT},
        [("a.yaml", 5, 7, "XSLT 'bad.xsl' does not compile: xsltParseStylesheetTop: unknown bogus element")],
    ),
    "invalid XPath in filter": Case(
        {"a.yaml": route("a", '- filter: {xpath: "/order[@id"}')},
        [("a.yaml", 5, 23, "XPath '/order[@id' does not compile: Invalid predicate")],
    ),
    "invalid XPath in a choice branch, and the branch is still checked": Case(
        {"a.yaml": route("a", '- choice:\n    - when: {xpath: "/a["}\n      steps:\n        - to: service:echo/ech')},
        [
            ("a.yaml", 6, 25, "XPath '/a[' does not compile: Invalid expression"),
            ("a.yaml", 8, 19, "service 'echo' has no operation 'ech' (did you mean 'echo'?)"),
        ],
    ),
    "duplicate route ids across files": Case(
        {"one/dup.yaml": route("dup", "- log: x"), "two/dup.yaml": route("dup", "- log: x", "seda:dup2")},
        [("two/dup.yaml", 2, 3, "duplicate route id 'dup' (first defined at {root}/one/dup.yaml:2:3)")],
    ),
    "route id differs from the file name": Case(
        {"orders.yaml": route("order", "- log: x")},
        [("orders.yaml", 2, 7, "route id 'order' must equal the file name 'orders'")],
    ),
    "two consumers on one listen key": Case(
        {"a.yaml": route("a", "- log: x", "seda:x"), "b.yaml": route("b", "- log: x", "seda:x")},
        [
            (
                "b.yaml",
                3,
                9,
                "'seda:x' listens where route 'a' already does ({root}/a.yaml:3:9); "
                "give one of them another port or path",
            )
        ],
    ),
    "YAML syntax error": Case(
        {"a.yaml": route("a", "- to: seda:sink\n- log: {message: x") + "  on_error: []\n", "sink.yaml": SINK},
        [
            (
                "a.yaml",
                7,
                11,
                "YAML syntax: expected ',' or '}', but got ':' (while parsing a flow mapping at line 6, column 12)",
            )
        ],
    ),
    "unset environment variable": Case(
        {"a.yaml": route("a", "- to: seda:sink", "file:///data/${" + UNSET + "}/in"), "sink.yaml": SINK},
        [("a.yaml", 3, 9, f"from: environment variable '{UNSET}' is not set (set it, or write ${{{UNSET}:-default}})")],
    ),
    "bad retry in on_error": Case(
        {"a.yaml": route("a", "- log: x") + "  on_error:\n    - retry: {max_attempts: 0, delay: soon}\n"},
        [
            ("a.yaml", 7, 29, "max_attempts must be at least 1 (got 0)"),
            ("a.yaml", 7, 39, "delay: 'soon' is not a duration (use e.g. 250ms, 5s, 2m, 1h)"),
        ],
    ),
    "unknown service and operation": Case(
        {"a.yaml": route("a", "- to: service:ecko/echo\n- to: service:echo/ehco")},
        [
            ("a.yaml", 5, 11, "no service named 'ecko' (did you mean 'echo'?)"),
            ("a.yaml", 6, 11, "service 'echo' has no operation 'ehco' (did you mean 'echo'?)"),
        ],
    ),
    "choice without when": Case(
        {"a.yaml": route("a", "- choice:\n    - otherwise:\n        - log: x")},
        [("a.yaml", 6, 9, "choice needs at least one 'when' branch")],
    ),
    "to a seda endpoint no route consumes": Case(
        {"a.yaml": route("a", "- to: seda:order"), "orders.yaml": route("orders", "- log: x")},
        [("a.yaml", 5, 11, "no route consumes 'seda:order' (did you mean 'seda:orders'?)")],
    ),
    "to a direct endpoint no route consumes": Case(
        {"a.yaml": route("a", "- enrich: direct:lookup")},
        [("a.yaml", 5, 15, "no route consumes 'direct:lookup'; add a route with 'from: direct:lookup'")],
    ),
    "seda where the consumer is direct": Case(
        {"a.yaml": route("a", "- wiretap: seda:audit"), "audit.yaml": route("audit", "- log: x", "direct:audit")},
        [("a.yaml", 5, 16, "no route consumes 'seda:audit' (did you mean 'direct:audit'?)")],
    ),
}


def write_case(root: Path, case: Case) -> list[str]:
    for name, text in case.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return [
        f"{root / f}:{line}:{col}: {message.replace('{root}', str(root))}" for f, line, col, message in case.expected
    ]


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)


@pytest.mark.parametrize("name", list(CASES))
def test_lint_reports_position_and_message(name: str, tmp_path: Path) -> None:
    expected = write_case(tmp_path, CASES[name])
    result = lint([tmp_path], EngineContext(load_settings()))
    assert [str(e) for e in result.errors] == expected


@pytest.mark.parametrize("name", list(CASES))
def test_cli_prints_the_same_lines_and_exits_1(name: str, tmp_path: Path) -> None:
    expected = write_case(tmp_path, CASES[name])
    result = CliRunner().invoke(main_group, ["lint", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.output.splitlines() == expected


def test_distinct_cases() -> None:
    """The suite proves at least 12 different mistakes, each with its own message."""
    messages = {message for case in CASES.values() for _, _, _, message in case.expected}
    assert len(CASES) >= 12 and len(messages) == sum(len(c.expected) for c in CASES.values())


def test_a_clean_set_lints_ok(tmp_path: Path) -> None:
    write_case(tmp_path, Case({"a.yaml": route("a", "- to: seda:sink"), "sink.yaml": SINK}, []))
    result = CliRunner().invoke(main_group, ["lint", str(tmp_path)], catch_exceptions=False)
    assert (result.exit_code, result.output) == (0, "2 file(s), 2 route(s): ok\n")


def test_a_disabled_consumer_still_counts(tmp_path: Path) -> None:
    sink = SINK.replace("  steps:", "  enabled: false\n  steps:")
    write_case(tmp_path, Case({"a.yaml": route("a", "- to: seda:sink"), "sink.yaml": sink}, []))
    assert lint([tmp_path], EngineContext(load_settings())).errors == []


def test_esb_lint_subprocess(tmp_path: Path) -> None:
    """The installed command, as an admin runs it: several files, every problem, exit 1."""
    case = Case(
        {
            "a.yaml": route("a", "- transfrom: {python: transforms.common:upper}"),
            "b.yaml": route("b", "- log: x", "sead:orders"),
            "c.yaml": route("c", '- filter: {xpath: "/order[@id"}'),
        },
        [
            ("a.yaml", 5, 7, "step: unknown key 'transfrom' (did you mean 'transform'?)"),
            ("b.yaml", 3, 9, "no adapter for scheme 'sead' (did you mean 'seda'?)"),
            ("c.yaml", 5, 23, "XPath '/order[@id' does not compile: Invalid predicate"),
        ],
    )
    expected = write_case(tmp_path, case)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "esb"), "lint", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == expected
