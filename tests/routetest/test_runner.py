"""``esb test``: the runner on the fixture routes, its failure messages, malformed files, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from esb.cli import main_group
from esb.routetest import Report, run_tests
from esb.routetest.report import text_lines
from esb.settings import load_settings
from tests.conftest import write_routes

FIXTURES = Path(__file__).parent / "fixtures"
ROUTES = FIXTURES / "routes"
FAILING = FIXTURES / "failing" / "failing_test.yaml"
MALFORMED = FIXTURES / "malformed"
ROOT = Path(__file__).resolve().parents[2]
SYNTAX = "YAML syntax: expected ',' or '}', but got '<scalar>' (while parsing a flow mapping at line 4, column 12)"


async def run(tests: Path, routes: Path = ROUTES) -> Report:
    return await run_tests([tests], [routes], load_settings())


def failures_of(report: Report) -> dict[str, list[str]]:
    return {r.test.name: [str(f) for f in r.failures] for r in report.results}


async def test_fixture_routes_pass() -> None:
    report = await run(ROUTES)
    assert failures_of(report) == {
        "enriched from a mocked direct route, normalised by the real one": [],
        "the patient route itself runs when not mocked, with its service mocked": [],
        "a failing lookup parks the message": [],
        "high priority goes the fast lane and each item is priced": [],
        "low priority takes the slow lane": [],
        "an order without an id is filtered out": [],
        "uppercases and forwards": [],
        "a mock without a body keeps the message": [],
        "a valid order goes on": [],
        "an invalid order is answered AE and parked; the sink gets nothing": [],
    }
    assert report.route_errors == [] and report.file_errors == []
    assert report.exit_code == 0
    assert text_lines(report)[-1] == "10 passed, 0 failed"


async def test_failures_name_position_test_expected_and_actual() -> None:
    report = await run(FAILING)
    f = str(FAILING)
    assert failures_of(report) == {
        "wrong body": [f"{f}:8:13: body: expected 'HELLO!', got 'HELLO'"],
        "wrong status": [
            f"{f}:14:15: status: expected processed, got failed "
            "(ValidationError: XPath /order[@id] is false for this message)"
        ],
        "wrong deliveries": [
            f"{f}:23:9: deliveries to 'seda:sink': expected 0 message(s), "
            """got 1 ('<order id="9" priority="high"><item>1</item></order>')""",
            f"{f}:25:32: deliveries #1 to 'seda:items': xpath '/price': expected '6', got '5'",
            f"{f}:25:61: deliveries #1 to 'seda:items': header 'split-index': expected '1', got '0'",
            f"{f}:25:72: deliveries #1 to 'seda:items': header 'lane': expected (absent), got 'fast'",
        ],
        "no such route": [
            f"{f}:28:12: route: expected a route id in the route set, got 'shoot' (did you mean 'shout'?)"
        ],
        "service not mocked": [
            f"{f}:32:5: route 'shout' calls 'service:echo/echo' in-line and the test has no mock for it "
            """(add mocks: {"service:echo/echo": {body: ...}})"""
        ],
        "too few replies": [f"{f}:41:7: mock 'service:echo/echo' has 1 reply but was called 2 times"],
        "wrong reply and error": [
            f"{f}:49:14: reply 'code': expected 'AR', got 'AE'",
            f"{f}:50:14: error: expected to contain 'TimeoutError', "
            "got 'ValidationError: XPath /order[@id] is false for this message'",
            f"{f}:51:22: body: expected to contain '<invoice', got '<order/>'",
        ],
    }
    assert report.exit_code == 1
    lines = text_lines(report)
    assert "FAIL wrong body" in lines
    assert f"  {f}:8:13: wrong body: body: expected 'HELLO!', got 'HELLO'" in lines
    assert lines[-1] == "0 passed, 7 failed"


async def test_malformed_files_report_every_problem_with_position() -> None:
    report = await run(MALFORMED)
    broken, syntax = MALFORMED / "broken_test.yaml", MALFORMED / "syntax_test.yaml"
    assert [str(e) for e in report.file_errors] == [
        f"{broken}:2:5: test: missing required key 'expect'",
        f"{broken}:5:5: test: unknown key 'expekt' (did you mean 'expect'?)",
        f"{broken}:8:22: input: give 'body' or 'body_file', not both",
        f"{broken}:10:7: mock: 'not a uri' is not an endpoint URI (expected scheme:..., e.g. file:///in)",
        f"{broken}:11:38: mock reply: 'error' raises instead of replying; drop 'body'",
        f"{broken}:13:15: status must be one of processed|filtered|failed (got 'procesed') (did you mean 'processed'?)",
        f"{broken}:14:15: xpath '/a[' does not compile: Invalid expression",
        f"{broken}:16:22: deliveries to 'seda:sink' must be a list",
        f"{broken}:17:5: test: missing required key 'name'",
        f"{broken}:18:24: body_file 'missing.xml' cannot be read (No such file or directory); "
        "it is relative to the test file",
        f"{syntax}:5:5: {SYNTAX}",
    ]
    assert report.results == [] and report.exit_code == 2


def write_tests(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}_test.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


async def test_queued_deliveries_touch_no_file_and_no_socket(tmp_path: Path) -> None:
    out = tmp_path / "out"
    routes = write_routes(
        tmp_path / "routes",
        {
            "export": f"""
                route:
                  id: export
                  from: seda:export
                  steps:
                    - to: file://{out}
                    - to: http://127.0.0.1:9/never?timeout=1s
            """,
        },
    )
    tests = write_tests(
        routes,
        "export",
        f"""
        tests:
          - name: both queued
            route: export
            input: {{body: "x", headers: {{k: v}}}}
            expect:
              deliveries:
                "file://{out}": [{{body: "x", headers: {{k: v}}}}]
                "http://127.0.0.1:9/never": [{{body: "x"}}]
        """,
    )
    report = await run(tests, routes)
    assert failures_of(report) == {"both queued": []}
    assert not out.exists()


async def test_route_that_does_not_lint_fails_its_tests(tmp_path: Path) -> None:
    routes = write_routes(
        tmp_path / "routes",
        {
            "broken": """
                route:
                  id: broken
                  from: seda:broken
                  steps:
                    - to: seda:nobody
            """,
            "fine": """
                route:
                  id: fine
                  from: seda:fine
                  steps:
                    - to: direct:loop
            """,
            "loop": """
                route:
                  id: loop
                  from: direct:loop
                  steps:
                    - to: direct:loop
            """,
        },
    )
    tests = write_tests(
        routes,
        "broken",
        """
        tests:
          - name: broken route
            route: broken
            input: {body: "x"}
            expect: {}
          - name: endless direct loop
            route: fine
            input: {body: "x"}
            expect: {}
        """,
    )
    report = await run(tests, routes)
    route_file, test_file = routes / "broken.yaml", routes / "broken_test.yaml"
    assert [str(e) for e in report.route_errors] == [
        f"{route_file}:5:11: no route consumes 'seda:nobody'; add a route with 'from: seda:nobody'"
    ]
    assert failures_of(report) == {
        "broken route": [
            f"{test_file}:3:12: route 'broken': expected a route that lints, got {route_file}:5:11: "
            "no route consumes 'seda:nobody'; add a route with 'from: seda:nobody'"
        ],
        "endless direct loop": [f"{test_file}:6:5: in-line calls nest deeper than 32 (a loop of direct: routes?)"],
    }
    assert report.exit_code == 1


async def test_default_status_is_processed_and_mock_errors_fail_the_route(tmp_path: Path) -> None:
    routes = write_routes(
        tmp_path / "routes",
        {
            "ask": """
                route:
                  id: ask
                  from: seda:ask
                  steps:
                    - to: service:echo/echo
            """,
        },
    )
    tests = write_tests(
        routes,
        "ask",
        """
        tests:
          - name: service down
            route: ask
            input: {body: "q"}
            mocks:
              "service:echo/echo": {error: "connection refused"}
            expect:
              body: "q"
        """,
    )
    report = await run(tests, routes)
    test_file = routes / "ask_test.yaml"
    assert failures_of(report) == {
        "service down": [
            f"{test_file}:8:7: status: expected processed, got failed "
            "(DeliveryError: service:echo/echo: connection refused)"
        ]
    }


# -- the command line -------------------------------------------------------------------


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main_group, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_passes_fails_and_rejects_malformed_files() -> None:
    code, out = cli("test", "--routes", str(ROUTES), str(ROUTES))
    lines = out.splitlines()
    assert code == 0, out
    assert lines[0] == "PASS enriched from a mocked direct route, normalised by the real one"
    assert lines[-1] == "10 passed, 0 failed"

    code, out = cli("test", "--routes", str(ROUTES), str(FAILING))
    assert code == 1
    assert f"  {FAILING}:8:13: wrong body: body: expected 'HELLO!', got 'HELLO'" in out.splitlines()
    assert out.splitlines()[-1] == "0 passed, 7 failed"

    code, out = cli("test", "--routes", str(ROUTES), str(MALFORMED), str(FAILING))
    assert code == 2
    assert f"{MALFORMED / 'syntax_test.yaml'}:5:5: {SYNTAX}" in out
    assert out.splitlines()[-1] == "0 passed, 7 failed"  # the well-formed file still ran


def test_cli_json() -> None:
    code, out = cli("test", "--json", "--routes", str(ROUTES), str(FAILING))
    data = json.loads(out)
    assert code == 1 and data["exit_code"] == 1
    assert (data["passed"], data["failed"]) == (0, 7)
    wrong_body = next(t for t in data["tests"] if t["name"] == "wrong body")
    assert wrong_body == {
        "name": "wrong body",
        "route": "shout",
        "position": f"{FAILING}:2:5",
        "passed": False,
        "failures": [{"position": f"{FAILING}:8:13", "what": "body", "expected": "'HELLO!'", "actual": "'HELLO'"}],
    }


def test_cli_no_tests_found(tmp_path: Path) -> None:
    code, out = cli("test", "--routes", str(ROUTES), str(tmp_path))
    assert code == 1
    assert out.splitlines() == ["no route tests found (files named *_test.yaml)", "0 passed, 0 failed"]


@pytest.mark.slow
def test_esb_test_as_a_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "ESB_DATA_DIR": str(tmp_path)}
    args = [sys.executable, "-m", "esb.cli", "test", "--routes", str(ROUTES)]
    passed = subprocess.run([*args, str(ROUTES)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.splitlines()[-1] == "10 passed, 0 failed"
    failed = subprocess.run([*args, str(FAILING)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert failed.returncode == 1
    assert "FAIL too few replies" in failed.stdout.splitlines()


async def test_shipped_route_tests_pass() -> None:
    """routes/*_test.yaml against the shipped routes, as `esb test routes/` runs them."""
    shipped = ROOT / "routes"
    report = await run_tests([shipped], [shipped], load_settings())
    assert report.route_errors == [] and report.file_errors == []
    assert {r.test.route for r in report.results} >= {"xml-orders"}
    assert [str(f) for r in report.results for f in r.failures] == []
    assert report.exit_code == 0
