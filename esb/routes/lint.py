"""``esb lint``: parse and compile every route the way the engine would.

The engine runs exactly this before it starts and refuses a config that does
not lint, so "lints clean" and "starts" mean the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esb.components import Adapter, Endpoint
from esb.errors import ComponentError, ConfigError, LintError
from esb.routes import model as m
from esb.routes.model import Route
from esb.routes.parse import parse_route_file
from esb.runtime.context import EngineContext
from esb.runtime.pipeline import CompiledRoute, _uri_error_offset, compile_route
from esb.uri import UriError, did_you_mean, parse_uri

ROUTE_SUFFIXES = (".yaml", ".yml")
#: in-process endpoints: a 'to' with no route consuming it can never be delivered
LOCAL_SCHEMES = ("direct", "seda")


#: subfolders of a route directory that hold examples to copy, not routes to run (lint them by naming them)
EXAMPLE_DIRS = frozenset({"examples"})


def route_files(paths: Iterable[Path]) -> tuple[list[Path], list[ConfigError]]:
    """Route files under the given files/directories (route tests and example folders excluded)."""
    files: list[Path] = []
    errors: list[ConfigError] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*"))
                if p.suffix in ROUTE_SUFFIXES and not is_test_file(p)
                and not EXAMPLE_DIRS & set(p.relative_to(path).parts[:-1])
            )  # fmt: skip
        elif path.is_file():
            files.append(path)
        else:
            errors.append(ConfigError(f"{path}: no such route file or directory"))
    return files, errors


def is_test_file(path: Path) -> bool:
    return path.stem.endswith("_test") or path.stem.endswith(".test") or "tests" in path.parts[-2:-1]


@dataclass
class LoadedRoute:
    route: Route
    compiled: CompiledRoute
    adapter: Adapter
    endpoint: Endpoint


@dataclass
class LintResult:
    routes: list[LoadedRoute] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    files: int = 0


def lint(paths: Iterable[Path], context: EngineContext) -> LintResult:
    result = LintResult()
    files, result.errors = route_files(paths)
    result.files = len(files)
    seen: dict[str, Route] = {}
    listeners: dict[tuple[Any, ...], Route] = {}
    unparsed = False
    for file in files:
        try:
            route = parse_route_file(file)
        except LintError as exc:
            result.errors.extend(exc.errors)
            unparsed = True
            continue
        if route.id in seen:
            first = seen[route.id]
            result.errors.append(
                ConfigError(
                    f"duplicate route id '{route.id}' (first defined at {first.position})",
                    route.position,
                )
            )
            continue
        seen[route.id] = route
        if not route.enabled:
            continue
        try:
            adapter, endpoint = context.endpoint(route.source.value)
        except ComponentError as exc:
            result.errors.append(ConfigError(str(exc), route.source.position))
            continue
        except UriError as exc:
            position = _uri_error_offset(route.source, str(exc))
            result.errors.append(ConfigError(str(exc), position))
            continue
        if type(adapter).consumer is Adapter.consumer:
            result.errors.append(ConfigError(f"'{adapter.scheme}:' cannot be used in 'from'", route.source.position))
            continue
        for problem in adapter.check(endpoint, consumer=True):
            result.errors.append(ConfigError(problem, route.source.position))
        key = adapter.listen_key(endpoint)
        if key is not None:
            other = listeners.get(key)
            if other is not None:
                result.errors.append(
                    ConfigError(
                        f"'{route.source.value}' listens where route '{other.id}' already does "
                        f"({other.source.position}); give one of them another port or path",
                        route.source.position,
                    )
                )
            listeners[key] = route
        compiled, errors = compile_route(route, context)
        result.errors.extend(errors)
        if not errors:
            result.routes.append(LoadedRoute(route, compiled, adapter, endpoint))
    if not unparsed:  # a route that did not parse may be the missing consumer
        result.errors.extend(unconsumed_local_targets(list(seen.values()), context))
    return result


def _local_key(uri: m.Uri, context: EngineContext) -> str | None:
    """``seda:name`` for an in-process endpoint URI; None for anything else or a bad URI."""
    try:
        if parse_uri(uri.value).scheme not in LOCAL_SCHEMES:
            return None
        adapter, endpoint = context.endpoint(uri.value)
    except (ComponentError, UriError):
        return None  # reported where the URI is compiled
    key = adapter.listen_key(endpoint)
    return str(key[0]) if key else None


def _targets(route: Route) -> list[m.Uri]:
    uris: list[m.Uri] = []
    for step in m.walk(route.steps) + m.walk(route.on_error):
        if isinstance(step, m.ToStep | m.WiretapStep | m.EnrichStep):
            uris.append(step.uri)
        elif isinstance(step, m.MulticastStep):
            uris.extend(step.uris)
    return uris


def unconsumed_local_targets(routes: list[Route], context: EngineContext) -> list[ConfigError]:
    """``to: seda:x`` / ``direct:x`` that no route in the set has as ``from``.

    A disabled route still counts as the consumer: disabling it for a while
    should not make the routes that feed it fail to lint.
    """
    consumers = {key for r in routes if (key := _local_key(r.source, context))}
    errors: list[ConfigError] = []
    for route in routes:
        if not route.enabled:
            continue
        for uri in _targets(route):
            key = _local_key(uri, context)
            if key is None or key in consumers:
                continue
            errors.append(ConfigError(f"no route consumes '{key}'{_suggest(key, consumers)}", uri.position))
    return errors


def _suggest(key: str, consumers: set[str]) -> str:
    """The same name under the other local scheme, else a close name under the same one."""
    scheme, _, name = key.partition(":")
    same_name = sorted(k for k in consumers if k.partition(":")[2] == name)
    if same_name:
        return f" (did you mean '{same_name[0]}'?)"
    names = [k.partition(":")[2] for k in consumers if k.startswith(scheme + ":")]
    hint = did_you_mean(name, names)
    if hint:
        return hint.replace("'", f"'{scheme}:", 1)
    return f"; add a route with 'from: {key}'"
