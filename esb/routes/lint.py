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
from esb.routes.model import Route
from esb.routes.parse import parse_route_file
from esb.runtime.context import EngineContext
from esb.runtime.pipeline import CompiledRoute, _uri_error_offset, compile_route
from esb.uri import UriError

ROUTE_SUFFIXES = (".yaml", ".yml")


def route_files(paths: Iterable[Path]) -> tuple[list[Path], list[ConfigError]]:
    """Route files under the given files/directories (route tests excluded)."""
    files: list[Path] = []
    errors: list[ConfigError] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.suffix in ROUTE_SUFFIXES and not is_test_file(p))
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
    for file in files:
        try:
            route = parse_route_file(file)
        except LintError as exc:
            result.errors.extend(exc.errors)
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
    return result
