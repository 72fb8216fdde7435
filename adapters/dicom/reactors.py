"""pynetdicom's two polling loops per association, woken by their work instead of sleeping a fixed 1 ms.

Each association runs two threads that poll: the DUL reactor (socket in,
PDUs out) sleeps 1 ms whenever a turn found nothing to do, and the
association reactor (DIMSE messages to the service handlers) sleeps 1 ms
before every look at its queue. A C-STORE waits for both twice (request in,
response out), about 2 ms on average, and every association, busy or idle,
costs about 4 % of a core in wake-ups (2 threads x 1,000 a second).

Here both sleeps wait on what they poll for, with a longer limit
(:data:`IDLE`): the DUL thread on its socket and an eventfd that
:meth:`send_pdu`, :meth:`kill_dul`, :meth:`stop_dul` and a socket ``close()``
signal; the association thread on its DIMSE message queue. Work is taken up
at once and an idle association wakes 100 times a second instead of 2,000;
a caller pausing the reactor (every SCU request and release does) wakes it
too (:class:`Checkpoint`).
What the loops check between sleeps is unchanged, only checked less often
when nothing happens: the ARTIM and network timers (seconds), and a peer's
A-RELEASE, noticed by the association thread within :data:`IDLE`.

Other sleeps (the SCU's waits in the caller's thread, shutdown loops) are
left as they are. Installed for pynetdicom 3.0 only, whose loops this was
written against (an unknown version keeps its own pace), on Linux (eventfd).
"""

from __future__ import annotations

import os
import select
import threading
import time
from typing import Any

import pynetdicom
from pynetdicom import association as association_module
from pynetdicom import dul as dul_module
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.transport import AssociationSocket

#: longest wait of an idle loop (it wakes at once for work)
IDLE = 0.01
#: the association reactor's own sleep (association.py ``_run_reactor``): the only one waited on its queue
REACTOR_SLEEP = 0.001
_LOCK = threading.Lock()


def _wake(dul: Any) -> None:
    """Signal the DUL thread that there is work (a no-op when it has no eventfd: it polls then)."""
    with _LOCK:
        fd = getattr(dul, "_esb_wake", None)
        if fd is not None:
            try:
                os.eventfd_write(fd, 1)
            except OSError:
                pass


def _dul_wait(dul: Any, seconds: float) -> None:
    """The DUL reactor's idle sleep: until the socket has data, work is signalled, or ``IDLE`` passed."""
    sock = getattr(getattr(dul, "socket", None), "socket", None)
    pending = getattr(sock, "pending", None)
    if pending is not None and pending():  # TLS: decrypted bytes waiting, the socket itself may be quiet
        return
    with _LOCK:
        fd = getattr(dul, "_esb_wake", None)
        if fd is None:
            fd = dul._esb_wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    watched: list[Any] = [fd]
    if sock is not None and sock.fileno() >= 0:
        watched.append(sock)
    try:
        ready, _, _ = select.select(watched, [], [], max(seconds, IDLE))
    except (OSError, ValueError):  # the socket went away meanwhile: the next turn notices
        time.sleep(seconds)
        return
    if fd in ready:
        try:
            os.eventfd_read(fd)
        except OSError:
            pass


def _reactor_wait(assoc: Any, seconds: float) -> None:
    """The association reactor's sleep before it looks at its DIMSE queue.

    Until a message is there, a caller wants the reactor paused (an SCU
    request or a release from the user's thread: :class:`Checkpoint`), or
    ``IDLE`` passed.
    """
    messages = assoc.dimse.msg_queue
    with messages.not_empty:  # the queue's own mutex: its locking qsize() would deadlock here
        if not messages._qsize() and assoc._reactor_checkpoint.is_set():
            messages.not_empty.wait(max(seconds, IDLE))


class Checkpoint:
    """An association's reactor checkpoint (a ``threading.Event`` to pynetdicom), with two changes.

    Clearing it (to pause the reactor) wakes a reactor waiting for messages:
    pynetdicom pauses the reactor before every request an SCU sends and
    before a release, and spins until the reactor says it is paused; without
    this, each would wait for the reactor's sleep to run out.

    And the reactor's wait clears ``_is_paused`` itself, under the lock that
    ``clear()`` takes. pynetdicom's reactor sets ``_is_paused`` before the
    wait and clears it after: a caller that unpauses the reactor and at once
    pauses it again (one SCU request after another) could find ``_is_paused``
    still true from the last pause while the reactor, woken by the unpause,
    was about to run a turn. The caller sent its request, the reactor took
    the response off the queue ("Received unexpected C-ECHO service
    message") and the caller waited for the DIMSE timeout. Now a pause either
    comes first (the reactor waits on) or finds ``_is_paused`` false and
    waits for the reactor to pause again.
    """

    def __init__(self, assoc: Any) -> None:
        self._assoc = assoc
        self._cond = threading.Condition(threading.Lock())
        self._flag = True

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag = False
        messages = self._assoc.dimse.msg_queue
        with messages.not_empty:  # taken after the reactor checked the flag, or it did not wait at all
            messages.not_empty.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """The reactor's pause: over only while the flag is set, with ``_is_paused`` cleared before anyone looks."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._flag, timeout):
                return False
            self._assoc._is_paused = False
            return True


def _with_checkpoint(original: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._reactor_checkpoint = Checkpoint(self)

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    return __init__


class _Time:
    """``time`` as pynetdicom's dul and association modules see it, with the reactors' sleeps replaced."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        me = threading.current_thread()
        if isinstance(me, DULServiceProvider) and seconds <= me._run_loop_delay:
            _dul_wait(me, seconds)
        elif isinstance(me, Association) and seconds == REACTOR_SLEEP:
            _reactor_wait(me, seconds)
        else:
            time.sleep(seconds)


def _waking(original: Any) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        _wake(self)
        return result

    method.__wrapped__ = original  # type: ignore[attr-defined]
    return method


def _closing(original: Any) -> Any:
    """The DUL thread's run: its eventfd is closed when it ends (under the lock, so no late wake writes to it)."""

    def run_reactor(self: Any) -> None:
        try:
            original(self)
        finally:
            with _LOCK:
                fd = getattr(self, "_esb_wake", None)
                self._esb_wake = None
            if fd is not None:
                os.close(fd)

    run_reactor.__wrapped__ = original  # type: ignore[attr-defined]
    return run_reactor


def _stop_dul(original: Any) -> Any:
    def stop_dul(self: Any) -> bool:
        if self.state_machine.current_state == "Sta1":
            self._kill_thread = True  # what the original sets too, first, so the wake-up finds it
            _wake(self)
        return bool(original(self))

    stop_dul.__wrapped__ = original  # type: ignore[attr-defined]
    return stop_dul


def _socket_close(original: Any) -> Any:
    def close(self: Any) -> None:
        original(self)
        dul = getattr(getattr(self, "_assoc", None), "dul", None)
        if dul is not None:
            _wake(dul)

    close.__wrapped__ = original  # type: ignore[attr-defined]
    return close


def install() -> bool:
    """Patch pynetdicom (once); False when its version or the platform is not the one this was written for."""
    if not pynetdicom.__version__.startswith("3.0.") or not hasattr(os, "eventfd"):
        return False
    if isinstance(getattr(dul_module, "time", None), _Time):
        return True
    DULServiceProvider.send_pdu = _waking(DULServiceProvider.send_pdu)  # type: ignore[method-assign]
    DULServiceProvider.kill_dul = _waking(DULServiceProvider.kill_dul)  # type: ignore[method-assign]
    DULServiceProvider.stop_dul = _stop_dul(DULServiceProvider.stop_dul)  # type: ignore[method-assign]
    DULServiceProvider.run_reactor = _closing(DULServiceProvider.run_reactor)  # type: ignore[method-assign]
    AssociationSocket.close = _socket_close(AssociationSocket.close)  # type: ignore[method-assign]
    Association.__init__ = _with_checkpoint(Association.__init__)  # type: ignore[method-assign]
    setattr(dul_module, "time", _Time())  # noqa: B010 - module attributes the stubs do not list
    setattr(association_module, "time", _Time())  # noqa: B010
    return True
