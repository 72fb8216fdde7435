"""Adapters, services and named transforms, discovered through entry points.

Lookups are lazy: nothing is imported until a route names it, so a broken
third-party plug-in only breaks the routes that use it, and ``esb lint`` says
which. A package adds an adapter by declaring ``esb.adapters = x = pkg:XAdapter``
in its own metadata; the core needs no change.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from esb.components import Adapter, Service
from esb.errors import ComponentError, UnknownSchemeError, UnknownServiceError
from esb.uri import did_you_mean

ADAPTERS = "esb.adapters"
SERVICES = "esb.services"
TRANSFORMS = "esb.transforms"


@cache
def _names(group: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    return sorted(_names(group))


def load_object(dotted: str) -> Any:
    """Import ``package.module:attr.sub`` (or ``package.module.attr``)."""
    module_name, sep, attr = dotted.partition(":")
    if not sep:
        module_name, _, attr = dotted.rpartition(".")
    if not module_name or not attr:
        raise ComponentError(f"'{dotted}' is not a dotted name like package.module:function")
    try:
        obj: Any = import_module(module_name)
    except ImportError as exc:
        raise ComponentError(f"cannot import module '{module_name}': {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            choices = [n for n in dir(obj) if not n.startswith("_")]
            raise ComponentError(f"module '{module_name}' has no '{attr}'" + did_you_mean(part, choices)) from None
    return obj


@cache
def adapter_class(scheme: str) -> type[Adapter]:
    value = _names(ADAPTERS).get(scheme)
    if value is None:
        raise UnknownSchemeError(
            f"no adapter for scheme '{scheme}'"
            + (did_you_mean(scheme, _names(ADAPTERS)) or f" (known: {', '.join(names(ADAPTERS))})")
        )
    cls = load_object(value)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise ComponentError(f"entry point {ADAPTERS} '{scheme}' = {value} is not an Adapter")
    return cls


@cache
def service_class(name: str) -> type[Service]:
    value = _names(SERVICES).get(name)
    if value is None:
        raise UnknownServiceError(
            f"no service named '{name}'"
            + (did_you_mean(name, _names(SERVICES)) or f" (known: {', '.join(names(SERVICES))})")
        )
    cls = load_object(value)
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        raise ComponentError(f"entry point {SERVICES} '{name}' = {value} is not a Service")
    return cls


def transform_target(name: str) -> str:
    """A transform named through ``esb.transforms`` or given as a dotted path."""
    return _names(TRANSFORMS).get(name, name)
