"""The engine task that ships stored audit records to the Audit Record Repository.

It claims a batch of unsent records (oldest first; rows other nodes hold are
skipped), sends them in one write on the transport and marks them sent. A
failed batch is put back with the error and a retry time on every row
(``lease_until``), so no node retries it before the backoff ends, and this
sender waits as long: 1 s, doubling up to ``retry_max_delay``, back to 1 s
after the next success. Nothing is deleted on failure, so the records outlive
any outage of the ARR; the buffer is the database table.

The trail wakes the sender when it stored something, so a record usually
leaves within milliseconds of its transaction; otherwise it polls each
``POLL`` seconds for records other nodes stored or gave back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from esb.audit.config import AuditConfig
from esb.audit.store import AuditStore, Claimed
from esb.audit.syslog import AuditTransportError, Transport, message

log = logging.getLogger("esb.audit.sender")

POLL = 1.0
#: a node that claimed records and died gives them up after this
LEASE = 120.0


class Sender:
    def __init__(
        self,
        store: AuditStore,
        transport: Transport,
        config: AuditConfig,
        *,
        node: str,
        on_sent: Callable[[int], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.store, self.transport, self.config, self.node = store, transport, config, node
        self.on_sent, self.on_failure = on_sent, on_failure
        self.hostname = config.hostname or socket.gethostname()
        self.delay = config.retry_delay
        self.retry_in = 0.0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Called on the engine loop when the trail stored records."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-sender")

    async def stop(self, drain: float = 2.0) -> None:
        """Stop the loop, then give the ARR ``drain`` seconds for what is still unsent (the stop record)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if drain > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain(), drain)
        await self.transport.close()

    async def _drain(self) -> None:
        while await self.send_once() == "sent":
            pass

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before the batch: a wake during it means more to send
            try:
                result = await self.send_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database: try again at the next poll
                log.error("audit sender: cannot read the audit buffer: %s", type(exc).__name__)
                result = "idle"
            if result == "sent":
                continue
            if result == "failed":  # the full backoff: new records must not hammer an ARR that is down
                await asyncio.sleep(self.retry_in)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL)

    async def send_once(self) -> str:
        """One batch: ``sent``, ``failed`` (backing off) or ``idle`` (nothing to send)."""
        claimed = await asyncio.to_thread(self.store.claim, self.node, self.config.batch, LEASE)
        if not claimed:
            return "idle"
        ids = [row.id for row in claimed]
        try:
            await self.transport.send([self._message(row) for row in claimed])
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self.store.release, ids))
            raise
        except AuditTransportError as exc:
            self.retry_in = self.delay
            await asyncio.to_thread(self.store.mark_failed, ids, str(exc), self.retry_in)
            if str(exc) != self.last_error:
                log.warning("audit records not sent (%d waiting in this batch, retry in %gs): %s",
                            len(ids), self.delay, exc)  # fmt: skip
            self.last_error = str(exc)
            self.delay = min(self.delay * 2, self.config.retry_max_delay)
            if self.on_failure is not None:
                self.on_failure("send")
            return "failed"
        await asyncio.to_thread(self.store.mark_sent, ids)
        if self.last_error is not None:
            log.info("audit records reach %s again", self.config.repository)
        self.last_error = None
        self.delay = self.config.retry_delay
        if self.on_sent is not None:
            self.on_sent(len(ids))
        return "sent"

    def _message(self, row: Claimed) -> bytes:
        return message(row.xml, record_id=row.id, created_at=row.created_at, hostname=self.hostname,
                       app_name=self.config.app_name)  # fmt: skip
