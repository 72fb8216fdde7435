"""The audit trail of one process: ``emit()`` queues, a writer thread stores.

``emit()`` is called from the engine loop, from pynetdicom's association
threads and from the services' worker threads, in the middle of answering a
peer. So it only appends to a deque under a lock and wakes the writer: no
I/O, no XML, nothing that can block or raise into the caller. The writer
thread renders the XML and inserts each batch in one transaction, at most
``flush_interval`` after an event arrived and once more at stop: that queue
is the only place an event lives outside the database.

Without an installed trail (a unit test, a tool that never opened the
database) events are kept in memory for :func:`captured`, never dropped
silently: past :data:`CAPTURE_LIMIT` the oldest goes with an ERROR line.
Several trails may be installed (tests run engines side by side); the last
one installed takes the events.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from esb.audit.model import AuditEvent, AuditSource
from esb.audit.store import AuditStore

log = logging.getLogger("esb.audit")

#: events kept in memory for captured(): every event, trail or not, the newest this many
CAPTURE_LIMIT = 10_000
#: a trail whose database is down holds at most this many events, then drops the oldest (ERROR, counted)
MAX_PENDING = 100_000
RETRY_MAX = 5.0


class AuditTrail:
    """Queue + writer thread for one store and one reporting node (AuditSourceIdentification)."""

    def __init__(
        self,
        store: AuditStore,
        source: AuditSource,
        *,
        flush_interval: float = 0.05,
        max_pending: int = MAX_PENDING,
        on_stored: Callable[[int], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.store, self.source = store, source
        self.flush_interval, self.max_pending = flush_interval, max_pending
        self.on_stored, self.on_failure = on_stored, on_failure
        self._queue: collections.deque[AuditEvent] = collections.deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._writing = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.stored = 0
        self.dropped = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def put(self, event: AuditEvent) -> None:
        with self._lock:
            if len(self._queue) >= self.max_pending:
                self._queue.popleft()
                self.dropped += 1
                log.error("audit buffer full (%d events, the database is not taking them): oldest dropped",
                          self.max_pending)  # fmt: skip
                if self.on_failure is not None:
                    self.on_failure("dropped")
            self._queue.append(event)
            first = len(self._queue) == 1
        if first:
            self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._writing

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event put so far is stored (or the timeout); True when none is left."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._queue or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Store what is queued, then end the writer; what the database would not take is logged."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        left = self.pending
        if left:
            log.error("audit trail stopped with %d events not stored (database unavailable)", left)

    def _take(self) -> list[AuditEvent]:
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
            self._writing = len(batch)
        return batch

    def _run(self) -> None:
        retry = self.flush_interval
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            batch = self._take()
            if batch:
                try:
                    self.store.append(batch, self.source)
                except Exception as exc:
                    # The type only: a driver error quotes its parameters, which hold patient data.
                    log.error("cannot store %d audit events (retrying in %.1fs): %s", len(batch), retry,
                              type(exc).__name__)  # fmt: skip
                    log.debug("audit store failure", exc_info=exc)
                    if self.on_failure is not None:
                        self.on_failure("store")
                    with self._idle:
                        self._queue.extendleft(reversed(batch))
                        self._writing = 0
                    if self._stopping:
                        return
                    time.sleep(retry)
                    retry = min(retry * 2, RETRY_MAX)
                    continue
                retry = self.flush_interval
                self.stored += len(batch)
                if self.on_stored is not None:
                    self.on_stored(len(batch))
            with self._idle:
                self._writing = 0
                if not self._queue:
                    self._idle.notify_all()
                    if self._stopping:
                        return
