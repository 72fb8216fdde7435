"""Delivery workers: claim queued deliveries from the journal and send them.

Any node may deliver any queued row: the producer is built from the row's
destination URI alone (its passwords, which the row does not keep, come from
the routes every node loaded: ``EngineContext.real_destination``), and the
retry policy travels in the row. A row claimed
by a node that dies is picked up again when its lease runs out.

Workers are woken one per batch of deliveries that this node queued (a claim
costs a write transaction, and waking every worker for one row made most of
their claims come back empty); idle workers still poll every ``delivery_poll``
for rows queued by other nodes, retries that came due and leases that ran out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from esb.errors import ComponentError, PermanentDeliveryError
from esb.exchange import Exchange, attachments_from_headers
from esb.journal.store import ClaimedDelivery
from esb.uri import UriError, redact

if TYPE_CHECKING:
    from esb.runtime.engine import Engine

log = logging.getLogger("esb.delivery")


class DeliveryWorkers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._claimed: set[str] = set()
        #: idle workers, each waiting on its future
        self._idle: deque[asyncio.Future[None]] = deque()
        #: deliveries queued here since the claims that started last (each claim covers a batch of them)
        self._unseen = 0
        #: rows that woken workers, not yet claiming, will cover (a batch each)
        self._covered = 0

    def start(self) -> None:
        for index in range(self.settings.delivery_workers):
            self._tasks.append(asyncio.create_task(self._loop(index), name=f"delivery-{index}"))
        if self._tasks:
            self._tasks.append(asyncio.create_task(self._watch_queued(), name="delivery-wake"))

    def wake(self, queued: int) -> None:
        """``queued`` deliveries were committed by this node: wake an idle worker per batch not yet covered.

        A worker woken earlier that has not started its claim yet will see these
        rows too (they were committed before this call), so it covers them.
        """
        if queued <= 0:
            return
        self._unseen += queued
        while self._unseen > self._covered and self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._covered += self.settings.delivery_batch

    async def stop(self, timeout: float) -> None:
        self._stopping = True
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
        self.engine.context.deliveries_queued.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._claimed:
            await asyncio.to_thread(self.engine.journal.release, list(self._claimed))
            self._claimed.clear()

    async def _watch_queued(self) -> None:
        """``context.deliveries_queued``, for code that queues deliveries outside a route run."""
        event = self.engine.context.deliveries_queued
        while True:
            await event.wait()
            if self._stopping:
                return
            event.clear()
            self.wake(1)

    async def _idle_wait(self) -> bool:
        """Wait for a wake-up or the poll interval; True when woken (then this worker covers a batch)."""
        if self._unseen > self._covered:
            return False  # queued while this worker was claiming and nobody was idle
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout=self.settings.delivery_poll)
        except TimeoutError:
            pass
        finally:
            if waiter in self._idle:
                self._idle.remove(waiter)
        return waiter.done() and not waiter.cancelled()

    async def _loop(self, index: int) -> None:
        journal = self.engine.journal
        batch = self.settings.delivery_batch
        woken = False
        while not self._stopping:
            # From here on every row queued so far is visible to this claim.
            self._unseen = max(0, self._unseen - batch)
            if woken:
                self._covered = max(0, self._covered - batch)
            try:
                claimed = await asyncio.to_thread(journal.claim_deliveries, batch)
            except Exception as exc:
                log.error("cannot claim deliveries: %s", exc)
                await asyncio.sleep(self.settings.delivery_poll * 4)
                woken = False
                continue
            self._claimed.update(d.id for d in claimed)
            for delivery in claimed:
                if self._stopping:
                    break
                await self.deliver(delivery)
                self._claimed.discard(delivery.id)
            woken = False
            if len(claimed) < batch and not self._stopping:
                # Nothing more was due when the claim ran: what is queued here
                # since wakes a worker; anything else is found by the poll.
                woken = await self._idle_wait()

    async def deliver(self, delivery: ClaimedDelivery) -> str:
        exchange = Exchange(
            body=delivery.body,
            headers=dict(delivery.headers),
            attachments=attachments_from_headers(delivery.headers),
            route_id=delivery.route_id,
            message_id=delivery.message_id,
        )
        exchange.headers["esb-delivery-id"] = delivery.id
        exchange.headers["esb-delivery-attempt"] = str(delivery.attempts)
        started = time.perf_counter()
        error: str | None = None
        permanent = False
        try:
            context = self.engine.context
            producer = context.producer(context.real_destination(delivery.destination))
            await asyncio.wait_for(producer.send(exchange), timeout=producer.send_timeout)
        except (PermanentDeliveryError, ComponentError, UriError, NotImplementedError) as exc:
            error, permanent = f"{type(exc).__name__}: {exc}", True
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - started) * 1000
        metrics = self.engine.context.metrics
        if error is None:
            metrics.delivered.labels(redact(delivery.destination)).inc()
        else:
            metrics.delivery_failed.labels(redact(delivery.destination)).inc()
            log.warning("delivery %s to %s failed (attempt %d): %s",
                        delivery.id, redact(delivery.destination), delivery.attempts, error.split(":")[0])  # fmt: skip
        status = await asyncio.to_thread(
            self.engine.journal.record_attempt,
            delivery,
            error=error,
            permanent=permanent,
            duration_ms=elapsed,
        )
        if status == "dead":
            log.warning("delivery %s to %s is dead after %d attempts",
                        delivery.id, redact(delivery.destination), delivery.attempts)  # fmt: skip
        return status
