"""Run route tests: the real compiled route, mocked in-line endpoints, no journal, no peers.

A route is linted and compiled by :func:`esb.routes.lint.lint` against a
:class:`~esb.routetest.mocks.MockContext`, so the steps under test are the
engine's own. What :class:`~esb.runtime.routes.RouteRunner` adds around them
(journal, metrics, concurrency) is left out; its failure handling is kept,
mirrored in :meth:`Session.run_route` because RouteRunner needs a live engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from esb.errors import ComponentError, ConfigError, DeliveryError, FilteredError, LintError, PermanentDeliveryError
from esb.exchange import Exchange, new_id
from esb.journal import NewDelivery
from esb.routes.lint import LoadedRoute, lint
from esb.routetest import model as t
from esb.routetest.expect import Failure, Message, check_message, check_sequence, same_endpoint, shown
from esb.routetest.loader import find_test_files, load_test_file
from esb.routetest.mocks import MockContext
from esb.runtime.pipeline import Run, run_steps
from esb.runtime.routes import describe
from esb.settings import Settings
from esb.uri import UriError, did_you_mean

log = logging.getLogger("esb.routetest")

#: direct: calls deeper than this are a loop between routes
MAX_DEPTH = 32
#: a test whose route runs longer than this fails instead of hanging the run
TEST_TIMEOUT = 60.0


@dataclass
class RouteRun:
    status: t.Status
    exchange: Exchange
    error: BaseException | None
    reply: dict[str, str]


class Session:
    """One test's state: its mocks, what was called in-line, what was queued."""

    def __init__(self, test: t.RouteTest, consumers: dict[str, LoadedRoute], context: MockContext) -> None:
        self.test = test
        self.consumers = consumers
        self.context = context
        self.calls: list[tuple[str, Message]] = []
        self.deliveries: list[NewDelivery] = []
        self.used: dict[str, int] = {}
        self.depth = 0

    def mock_for(self, uri: str) -> t.Mock | None:
        if uri in self.test.mocks:
            return self.test.mocks[uri]
        return next((m for key, m in self.test.mocks.items() if same_endpoint(key, uri)), None)

    async def call(self, uri: str, exchange: Exchange) -> Exchange | None:
        """An in-line endpoint: the test's mock, else the route consuming it (direct:)."""
        self.calls.append((uri, Message(exchange.body, dict(exchange.headers))))
        mock = self.mock_for(uri)
        if mock is not None:
            return self.reply(mock, exchange)
        key = self.local_key(uri)
        target = self.consumers.get(key) if key else None
        if key is None or target is None:
            raise ConfigError(
                f"route '{self.test.route}' calls '{uri}' in-line and the test has no mock for it "
                f'(add mocks: {{"{uri}": {{body: ...}}}})',
                self.test.position,
            )
        if self.depth >= MAX_DEPTH:
            raise ConfigError(
                f"in-line calls nest deeper than {MAX_DEPTH} (a loop of direct: routes?)", self.test.position
            )
        self.depth += 1
        try:
            outcome = await self.run_route(target, exchange.copy())
        finally:
            self.depth -= 1
        if outcome.status == "failed":
            error = outcome.error or RuntimeError("route failed")
            raise PermanentDeliveryError(f"{key}: {type(error).__name__}: {error}")  # as adapters/direct.py
        return outcome.exchange

    def local_key(self, uri: str) -> str | None:
        """``direct:name`` for an in-line endpoint a route of the set consumes; None otherwise."""
        try:
            adapter, endpoint = self.context.endpoint(uri)
        except (ComponentError, UriError):
            return None  # service: has no adapter; a bad URI did not lint
        key = adapter.listen_key(endpoint) if adapter.inline else None
        return str(key[0]) if key else None

    def reply(self, mock: t.Mock, exchange: Exchange) -> Exchange | None:
        count = self.used.get(mock.uri, 0)
        self.used[mock.uri] = count + 1
        if mock.repeat:
            answer = mock.replies[0]
        elif count < len(mock.replies):
            answer = mock.replies[count]
        else:
            raise ConfigError(
                f"mock '{mock.uri}' has {len(mock.replies)} repl{'y' if len(mock.replies) == 1 else 'ies'} "
                f"but was called {count + 1} times",
                mock.position,
            )
        if answer.error is not None:
            raise DeliveryError(f"{mock.uri}: {answer.error}")
        body = exchange.body if answer.body is None else answer.body
        return Exchange(body=body, headers=dict(answer.headers))

    async def run_route(self, loaded: LoadedRoute, exchange: Exchange) -> RouteRun:
        """Steps, then on_error on failure, as RouteRunner.process does; deliveries kept on completion."""
        exchange.route_id = loaded.route.id
        exchange.message_id = new_id()
        run = Run()
        error: BaseException | None = None
        status: t.Status = "processed"
        try:
            await run_steps(loaded.compiled.steps, exchange, run)
        except FilteredError:
            status = "filtered"
        except ConfigError:
            raise  # the test itself is incomplete (a missing mock): not the route's failure
        except Exception as exc:
            status, error = "failed", exc
            run = Run()
            exchange.properties["error"] = describe(exc)
            exchange.headers["esb-error"] = type(exc).__name__
            try:
                await run_steps(loaded.compiled.on_error, exchange, run)
            except ConfigError:
                raise
            except Exception as on_error_exc:
                log.info("route %s: on_error failed too: %s", loaded.route.id, describe(on_error_exc))
        self.deliveries.extend(run.deliveries)
        return RouteRun(status, exchange, error, dict(run.reply))


@dataclass
class TestResult:
    __test__ = False  # not a pytest class

    test: t.RouteTest
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class Report:
    results: list[TestResult] = field(default_factory=list)
    #: malformed test files: exit code 2
    file_errors: list[ConfigError] = field(default_factory=list)
    #: problems in the route set under test (as `esb lint` reports them)
    route_errors: list[ConfigError] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def exit_code(self) -> int:
        if self.file_errors:
            return 2
        return 1 if self.failed or self.route_errors or not self.results else 0


def evaluate(test: t.RouteTest, outcome: RouteRun, session: Session) -> list[Failure]:
    expect = test.expect
    failures: list[Failure] = []
    if outcome.status != expect.status:
        actual = outcome.status + (f" ({describe(outcome.error)})" if outcome.error else "")
        failures.append(Failure(expect.status_position or expect.position, "status", expect.status, actual))
    if expect.error is not None:
        text = describe(outcome.error) if outcome.error else None
        if text is None or expect.error not in text:
            where = expect.error_position or expect.position
            failures.append(Failure(where, "error", f"to contain {shown(expect.error)}", shown(text)))
    for key, value in expect.reply.items():
        if outcome.reply.get(key) != value:
            where = expect.reply_position or expect.position
            failures.append(Failure(where, f"reply '{key}'", shown(value), shown(outcome.reply.get(key))))
    if expect.message is not None:
        final = Message(outcome.exchange.body, outcome.exchange.headers)
        failures.extend(check_message(expect.message.checks, final, ""))
    queued = [(d.destination, Message(d.body, d.headers)) for d in session.deliveries]
    for seq in expect.deliveries:
        failures.extend(check_sequence(seq, queued, "deliveries"))
    for seq in expect.calls:
        failures.extend(check_sequence(seq, session.calls, "calls"))
    return sorted(failures, key=lambda f: (f.position.line, f.position.column))


class Runner:
    """Lints the route set once, then runs each test against the compiled routes."""

    def __init__(self, settings: Settings, route_paths: Iterable[Path]) -> None:
        self.context = MockContext(settings)
        result = lint(list(route_paths), self.context)
        self.route_errors = result.errors
        broken = {Path(e.position.file).resolve() for e in result.errors if e.position is not None}
        self.routes = {r.route.id: r for r in result.routes if Path(r.route.file).resolve() not in broken}
        self.consumers: dict[str, LoadedRoute] = {}
        for loaded in self.routes.values():
            key = loaded.adapter.listen_key(loaded.endpoint)
            if key is not None:
                self.consumers[str(key[0])] = loaded
        self.errors_by_route: dict[str, list[ConfigError]] = {}
        for error in result.errors:
            if error.position is not None:
                self.errors_by_route.setdefault(Path(error.position.file).stem, []).append(error)

    async def run(self, test: t.RouteTest) -> TestResult:
        loaded = self.routes.get(test.route)
        if loaded is None:
            return TestResult(test, [self.missing_route(test)])
        session = Session(test, self.consumers, self.context)
        self.context.session = session
        exchange = Exchange(body=test.body, headers=dict(test.headers))
        try:
            outcome = await asyncio.wait_for(session.run_route(loaded, exchange), TEST_TIMEOUT)
        except ConfigError as exc:
            position = exc.position or test.position
            return TestResult(test, [Failure(position, exc.message)])
        except TimeoutError:
            return TestResult(test, [Failure(test.position, "run time", f"under {TEST_TIMEOUT:g}s", "a timeout")])
        finally:
            self.context.session = None
        return TestResult(test, evaluate(test, outcome, session))

    def missing_route(self, test: t.RouteTest) -> Failure:
        errors = self.errors_by_route.get(test.route)
        if errors:
            return Failure(test.route_position, f"route '{test.route}'", "a route that lints", str(errors[0]))
        hint = did_you_mean(test.route, self.routes) or f" (routes: {', '.join(sorted(self.routes)) or 'none'})"
        return Failure(test.route_position, "route", "a route id in the route set", f"'{test.route}'{hint}")

    async def close(self) -> None:
        await self.context.close()


async def run_tests(test_paths: Iterable[Path], route_paths: Iterable[Path], settings: Settings) -> Report:
    """Every ``*_test.yaml`` under ``test_paths`` against the routes under ``route_paths``."""
    report = Report()
    files, report.file_errors = find_test_files(test_paths)
    suites: list[t.RouteTestFile] = []
    for file in files:
        try:
            suites.append(load_test_file(file))
        except LintError as exc:
            report.file_errors.extend(exc.errors)
    if not suites:
        return report
    runner = Runner(settings, route_paths)
    report.route_errors = runner.route_errors
    try:
        for suite in suites:
            for test in suite.tests:
                report.results.append(await runner.run(test))
    finally:
        await runner.close()
    return report
