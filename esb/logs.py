"""Logging set-up: text or JSON lines, every record tagged with its exchange.

Patient data stays out of records above DEBUG: route code logs ids, routes and
error classes at INFO/WARNING and keeps message content for DEBUG.
"""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

current_exchange: contextvars.ContextVar[str] = contextvars.ContextVar("exchange", default="-")
current_route: contextvars.ContextVar[str] = contextvars.ContextVar("route", default="-")


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "exchange"):
            record.exchange = current_exchange.get()
        if not hasattr(record, "route"):
            record.route = current_route.get()
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record comes, not as it was at set-up.

    A process that swaps its stderr after configuring logging (a test runner
    capturing each test's output, a daemon redirecting it) would otherwise
    keep writing to the closed old stream from its worker threads.
    """

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass  # StreamHandler.__init__ and setStream assign it; the property always answers sys.stderr


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = _StderrHandler()
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(route)s %(exchange)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(route)s %(exchange)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
