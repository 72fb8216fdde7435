"""A route's steps, compiled once into async callables.

``to:`` an adapter queues a durable delivery (the journal commits it together
with the message's completion); ``to:`` an in-line endpoint (``direct:``,
``service:``) is called at once and its reply becomes the message. Compiling
is also what ``esb lint`` runs, so both find the same problems.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from esb.errors import ComponentError, ConfigError, FilteredError, Position
from esb.exchange import Exchange
from esb.journal import NewDelivery
from esb.routes import model as m
from esb.runtime import expressions as ex_
from esb.runtime.context import EngineContext
from esb.uri import UriError, did_you_mean, parse_uri

log = logging.getLogger("esb.route")


@dataclass
class Run:
    """What one pass of a route produced besides the message itself."""

    deliveries: list[NewDelivery] = field(default_factory=list)
    reply: dict[str, str] = field(default_factory=dict)


Executor = Callable[[Exchange, Run], Awaitable[None]]

#: exchange property where a service puts the NewDelivery rows it wants queued
SERVICE_DELIVERIES = "esb.deliveries"


class StepError(Exception):
    """A compile-time problem with a step, carrying its position."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.error = ConfigError(message, position)


def _uri_error_offset(uri: m.Uri, message: str) -> Position:
    """Point at the option inside the URI text when the message names one."""
    position = uri.position
    if "option '" in message:
        name = message.split("option '", 1)[1].split("'", 1)[0]
        found = re.search(r"[?&]" + re.escape(name) + "=", uri.value)
        if found:
            return Position(position.file, position.line, position.column + found.start() + 1)
    return position


class Compiler:
    """Turns step models into executors; collects every error with its position."""

    def __init__(self, route: m.Route, context: EngineContext) -> None:
        self.route = route
        self.context = context
        self.errors: list[ConfigError] = []

    def fail(self, message: str, position: Position) -> None:
        self.errors.append(ConfigError(message, position))

    def steps(self, steps: tuple[m.Step, ...]) -> list[Executor]:
        out: list[Executor] = []
        for step in steps:
            try:
                executor = self.step(step)
            except ComponentError as exc:
                self.fail(str(exc), step.position)
                continue
            except StepError as exc:
                self.errors.append(exc.error)
                continue
            if executor is not None:
                out.append(executor)
        return out

    def service_caller(self, uri: m.Uri) -> Callable[[Exchange], Awaitable[Exchange | None]]:
        """``service:NAME/OPERATION`` checked now, called later."""
        name, _, operation = parse_uri(uri.value).path.partition("/")
        try:
            service = self.context.service(name)
        except ComponentError as exc:
            raise StepError(str(exc), uri.position) from None
        if service.operations and operation not in service.operations:
            raise StepError(
                f"service '{name}' has no operation '{operation}'"
                + (did_you_mean(operation, service.operations) or f" (has: {', '.join(service.operations)})"),
                uri.position,
            )

        async def call(exchange: Exchange) -> Exchange | None:
            return await service.call(operation, exchange)

        return call

    def endpoint_sender(self, uri: m.Uri, *, keep_body: bool) -> Executor:
        """``to``-like behaviour for one URI: in-line call or queued delivery."""
        try:
            parsed = parse_uri(uri.value)
        except UriError as exc:
            raise StepError(str(exc), uri.position) from None
        if parsed.scheme == "service":
            call = self.service_caller(uri)

            async def call_service(exchange: Exchange, run: Run) -> None:
                request = exchange if not keep_body else exchange.copy()
                reply = await call(request)
                # A service may queue deliveries (EMPI events to listeners): they
                # commit with the message's completion, all or nothing.
                queued: list[Any] = []
                for carrier in (request, reply):
                    items = carrier.properties.pop(SERVICE_DELIVERIES, None) if carrier is not None else None
                    if items is not None and all(items is not q for q in queued):  # copies share the list
                        queued.append(items)
                        for item in items:  # kept without passwords, as a route's own to: (context.py)
                            item.destination = self.context.stored_destination(item.destination)
                        run.deliveries.extend(items)
                if reply is not None and not keep_body:
                    exchange.body, exchange.headers = reply.body, {**exchange.headers, **reply.headers}
                    exchange.attachments = reply.attachments

            return call_service
        try:
            adapter, endpoint = self.context.endpoint(uri.value)
        except ComponentError as exc:
            raise StepError(str(exc), uri.position) from None
        except UriError as exc:
            raise StepError(str(exc), _uri_error_offset(uri, str(exc))) from None
        for problem in adapter.check(endpoint, consumer=False):
            self.fail(problem, uri.position)
        if adapter.inline:

            async def call_inline(exchange: Exchange, run: Run) -> None:
                producer = self.context.producer(uri.value)
                reply = await producer.send(exchange.copy() if keep_body else exchange)
                if reply is not None and not keep_body:
                    exchange.body, exchange.headers = reply.body, {**exchange.headers, **reply.headers}

            return call_inline
        dead = parsed.scheme == "dead-letter"
        retry = self.route.retry
        try:
            destination = self.context.stored_destination(uri.value)
        except ComponentError as exc:
            raise StepError(str(exc), uri.position) from None

        async def queue(exchange: Exchange, run: Run) -> None:
            error = exchange.properties.get("error")
            run.deliveries.append(
                NewDelivery(
                    destination=destination,
                    body=exchange.body,
                    headers=dict(exchange.headers),
                    retry=retry,
                    status="dead" if dead else "pending",
                    error=str(error) if dead and error is not None else None,
                )
            )

        return queue

    def step(self, step: m.Step) -> Executor | None:
        if isinstance(step, m.ToStep):
            if step.retry is not None:
                policy = step.retry
                inner = self.endpoint_sender(step.uri, keep_body=False)

                async def to_with_retry(exchange: Exchange, run: Run) -> None:
                    before = len(run.deliveries)
                    await inner(exchange, run)
                    for delivery in run.deliveries[before:]:
                        delivery.retry = policy

                return to_with_retry
            return self.endpoint_sender(step.uri, keep_body=False)
        if isinstance(step, m.WiretapStep):
            return self.endpoint_sender(step.uri, keep_body=True)
        if isinstance(step, m.MulticastStep):
            senders = [self.endpoint_sender(u, keep_body=True) for u in step.uris]

            async def multicast(exchange: Exchange, run: Run) -> None:
                for send in senders:
                    await send(exchange, run)

            return multicast
        if isinstance(step, m.EnrichStep):
            return self.enrich(step)
        if isinstance(step, m.TransformStep):
            if step.kind == "xslt":
                return _wrap(ex_.xslt_transform(step.target, step.params, self.route.file))
            return _wrap(ex_.python_transform(step.target, step.params))
        if isinstance(step, m.ValidateStep):
            if step.kind not in ("xsd", "xpath", "python", "hl7v2"):
                raise StepError(f"unknown validator '{step.kind}'", step.position)
            return _wrap(ex_.validator(step.kind, step.target, step.options, self.route.file))
        if isinstance(step, m.FilterStep):
            test = self.predicate(step.predicate)

            async def filter_(exchange: Exchange, run: Run) -> None:
                if not await test(exchange):
                    raise FilteredError("filtered out")

            return filter_
        if isinstance(step, m.ChoiceStep):
            return self.choice(step)
        if isinstance(step, m.SetHeaderStep):
            return self.set_header(step)
        if isinstance(step, m.SplitStep):
            return self.split(step)
        if isinstance(step, m.LogStep):
            level = getattr(logging, step.level.upper())
            text = step.message

            async def log_(exchange: Exchange, run: Run) -> None:
                log.log(level, text, extra={"route": exchange.route_id, "exchange": exchange.id})

            return log_
        if isinstance(step, m.ReplyStep):
            values = dict(step.values)

            async def reply(exchange: Exchange, run: Run) -> None:
                run.reply.update(values)

            return reply
        raise StepError(f"step {type(step).__name__} is not supported here", step.position)

    def enrich(self, step: m.EnrichStep) -> Executor:
        strategy = ex_.python_callable(step.strategy) if step.strategy else None
        try:
            is_service = parse_uri(step.uri.value).scheme == "service"
            if not is_service:
                self.context.endpoint(step.uri.value)
        except ComponentError as exc:
            raise StepError(str(exc), step.uri.position) from None
        except UriError as exc:
            raise StepError(str(exc), _uri_error_offset(step.uri, str(exc))) from None
        raw = step.uri.value
        request = self.service_caller(step.uri) if is_service else None

        async def enrich(exchange: Exchange, run: Run) -> None:
            if request is not None:
                reply = await request(exchange.copy())
            else:
                reply = await self.context.producer(raw).send(exchange.copy())
            if reply is None:
                return
            if strategy is not None:
                exchange.set_body(await ex_.call_maybe_async(strategy, exchange, reply))
            else:
                exchange.body = reply.body
            exchange.headers.update(reply.headers)

        return enrich

    def predicate(self, predicate: m.Predicate) -> ex_.Test:
        """Compile a test; a bad expression is reported at the expression, not at its step."""
        try:
            return ex_.predicate(predicate)
        except ComponentError as exc:
            raise StepError(str(exc), predicate.position) from None

    def choice(self, step: m.ChoiceStep) -> Executor:
        branches: list[tuple[ex_.Test, list[Executor]]] = []
        for when in step.whens:  # every branch is compiled, so all its errors are reported
            try:
                test = self.predicate(when.predicate)
            except StepError as exc:
                self.errors.append(exc.error)
                self.steps(when.steps)
                continue
            branches.append((test, self.steps(when.steps)))
        otherwise = self.steps(step.otherwise)

        async def choice(exchange: Exchange, run: Run) -> None:
            for test, steps in branches:
                if await test(exchange):
                    await run_steps(steps, exchange, run)
                    return
            await run_steps(otherwise, exchange, run)

        return choice

    def set_header(self, step: m.SetHeaderStep) -> Executor:
        name = step.name
        if step.xpath is not None:
            compiled = ex_.xpath(step.xpath, step.namespaces)

            async def from_xpath(exchange: Exchange) -> str:
                result: Any = compiled(exchange.xml())
                if isinstance(result, list):
                    result = result[0] if result else ""
                    result = result.text if hasattr(result, "text") else result
                return "" if result is None else str(result)

            compute = from_xpath
        elif step.python is not None:
            fn = ex_.python_callable(step.python)

            async def from_python(exchange: Exchange) -> str:
                return str(await ex_.call_maybe_async(fn, exchange))

            compute = from_python
        else:
            constant = step.value or ""

            async def from_value(exchange: Exchange) -> str:
                return constant

            compute = from_value

        async def set_header(exchange: Exchange, run: Run) -> None:
            exchange.headers[name] = await compute(exchange)

        return set_header

    def split(self, step: m.SplitStep) -> Executor:
        inner = self.steps(step.steps)
        if step.kind == "xpath":
            compiled = ex_.xpath(step.expression, step.namespaces)
            from lxml import etree

            async def parts(exchange: Exchange) -> list[bytes]:
                found: Any = compiled(exchange.xml())
                items = found if isinstance(found, list) else [found]
                return [etree.tostring(i) if isinstance(i, etree._Element) else str(i).encode() for i in items]
        else:
            fn = ex_.python_callable(step.expression)

            async def parts(exchange: Exchange) -> list[bytes]:
                result = await ex_.call_maybe_async(fn, exchange)
                return [p if isinstance(p, bytes) else str(p).encode() for p in result]

        async def split(exchange: Exchange, run: Run) -> None:
            items = await parts(exchange)
            for index, body in enumerate(items):
                child = exchange.copy(body)
                child.headers["split-index"] = str(index)
                child.headers["split-size"] = str(len(items))
                try:
                    await run_steps(inner, child, run)
                except FilteredError:
                    continue

        return split


def _wrap(apply: Callable[[Exchange], Awaitable[None]]) -> Executor:
    async def executor(exchange: Exchange, run: Run) -> None:
        await apply(exchange)

    return executor


async def run_steps(steps: list[Executor], exchange: Exchange, run: Run) -> None:
    for step in steps:
        await step(exchange, run)


@dataclass
class CompiledRoute:
    route: m.Route
    steps: list[Executor]
    on_error: list[Executor]


def compile_route(route: m.Route, context: EngineContext) -> tuple[CompiledRoute, list[ConfigError]]:
    compiler = Compiler(route, context)
    steps = compiler.steps(route.steps)
    on_error = compiler.steps(route.on_error)
    return CompiledRoute(route, steps, on_error), compiler.errors
