"""The audit trail (IHE ATNA, DICOM PS3.15 A.5): what happened to whose data, by whom, from where.

    from esb.audit import emit, events
    emit(events.user_authentication(user="alice", success=False, peer_host="10.0.0.7", method="password"))

:func:`emit` is synchronous, cheap and thread-safe and never raises into the
caller: the event goes to the installed :class:`AuditTrail` (a queue its
writer thread stores in ``esb_audit_records``), and the engine's sender ships
stored records to the Audit Record Repository over syslog (RFC 5424 over TLS
RFC 5425, or UDP RFC 5426). A failure to buffer is logged at ERROR and
counted (:func:`failures`). Without an installed trail the event is kept in
memory (:func:`captured`), for tests and tools that never open the database.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from esb.audit import events
from esb.audit.model import AuditEvent, AuditSource
from esb.audit.trail import CAPTURE_LIMIT, AuditTrail

log = logging.getLogger("esb.audit")

_lock = threading.Lock()
_trails: list[AuditTrail] = []
_captured: collections.deque[AuditEvent] = collections.deque(maxlen=CAPTURE_LIMIT)
_failures = 0
_P = ParamSpec("_P")
_R = TypeVar("_R")


def emit(event: AuditEvent) -> None:
    """Record ``event``: queued for the database at once, stored within ~50 ms."""
    global _failures
    try:
        trail = _trails[-1] if _trails else None
        if trail is None and len(_captured) == CAPTURE_LIMIT:
            log.error("audit event dropped from memory: no audit trail installed and %d events held already",
                      CAPTURE_LIMIT)  # fmt: skip
            _failures += 1
        _captured.append(event)
        if trail is not None:
            trail.put(event)
    except Exception as exc:  # the contract: never into the caller
        with _lock:
            _failures += 1
        log.error("audit event not buffered: %s", type(exc).__name__)


def guarded(fn: Callable[_P, _R]) -> Callable[_P, _R | None]:
    """For call-site helpers that read requests to build events: whatever they trip over is logged
    and counted, never raised into the transaction they audit."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R | None:
        global _failures
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            with _lock:
                _failures += 1
            log.error("audit record of %s not made: %s", fn.__qualname__, type(exc).__name__)
            log.debug("audit record failure", exc_info=exc)
            return None

    return wrapper


def install(trail: AuditTrail) -> None:
    """Make ``trail`` take every event emitted in this process from now on (until uninstalled)."""
    with _lock:
        _trails.append(trail)


def uninstall(trail: AuditTrail) -> None:
    with _lock:
        if trail in _trails:
            _trails.remove(trail)


def installed() -> AuditTrail | None:
    return _trails[-1] if _trails else None


def captured() -> list[AuditEvent]:
    """The events emitted in this process, oldest first (the newest ``CAPTURE_LIMIT``), trail or not."""
    return list(_captured)


def clear_captured() -> None:
    _captured.clear()


def failures() -> int:
    """Events that could not be buffered since the process started."""
    return _failures


__all__ = [
    "AuditEvent", "AuditSource", "AuditTrail", "captured", "clear_captured", "emit", "events", "failures",
    "guarded", "install", "installed", "uninstall",
]  # fmt: skip
