"""Route test results for people (one line per test) and for machines (JSON).

The text form ends with a line ``N passed, M failed`` alone, which scripts and
CI logs can grep; failure lines start with ``file:line:col`` so editors jump there.
"""

from __future__ import annotations

from typing import Any

from esb.routetest.expect import Failure
from esb.routetest.runner import Report, TestResult


def _position(value: object) -> str | None:
    return str(value) if value is not None else None


def text_lines(report: Report) -> list[str]:
    lines = [str(error) for error in report.file_errors]
    if report.route_errors:
        lines.append(f"{len(report.route_errors)} problem(s) in the routes under test:")
        lines.extend(f"  {error}" for error in report.route_errors)
    for result in report.results:
        lines.append(f"{'PASS' if result.passed else 'FAIL'} {result.test.name}")
        lines.extend(f"  {failure.position}: {result.test.name}: {_detail(failure)}" for failure in result.failures)
    if not report.results and not report.file_errors:
        lines.append("no route tests found (files named *_test.yaml)")
    lines.append(f"{report.passed} passed, {report.failed} failed")
    return lines


def _detail(failure: Failure) -> str:
    if not failure.expected:
        return failure.what
    return f"{failure.what}: expected {failure.expected}, got {failure.actual}"


def _result(result: TestResult) -> dict[str, Any]:
    return {
        "name": result.test.name,
        "route": result.test.route,
        "position": str(result.test.position),
        "passed": result.passed,
        "failures": [
            {"position": str(f.position), "what": f.what, "expected": f.expected, "actual": f.actual}
            for f in result.failures
        ],
    }


def as_json(report: Report) -> dict[str, Any]:
    return {
        "passed": report.passed,
        "failed": report.failed,
        "exit_code": report.exit_code,
        "file_errors": [{"position": _position(e.position), "message": e.message} for e in report.file_errors],
        "route_errors": [{"position": _position(e.position), "message": e.message} for e in report.route_errors],
        "tests": [_result(r) for r in report.results],
    }
