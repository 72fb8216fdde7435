"""Delivery workers: claim queued deliveries from the journal and send them.

Any node may deliver any queued row: the producer is built from the row's
destination URI alone, and the retry policy travels in the row. A row claimed
by a node that dies is picked up again when its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from esb.errors import ComponentError, PermanentDeliveryError
from esb.exchange import Exchange
from esb.journal.store import ClaimedDelivery
from esb.uri import UriError

if TYPE_CHECKING:
    from esb.runtime.engine import Engine

log = logging.getLogger("esb.delivery")

#: a single send may not take longer than this; slower peers count as failed
SEND_TIMEOUT = 60.0


class DeliveryWorkers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._claimed: set[str] = set()

    def start(self) -> None:
        for index in range(self.settings.delivery_workers):
            self._tasks.append(asyncio.create_task(self._loop(index), name=f"delivery-{index}"))

    async def stop(self, timeout: float) -> None:
        self._stopping = True
        self.engine.context.deliveries_queued.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._claimed:
            await asyncio.to_thread(self.engine.journal.release, list(self._claimed))
            self._claimed.clear()

    async def _loop(self, index: int) -> None:
        event = self.engine.context.deliveries_queued
        journal = self.engine.journal
        while not self._stopping:
            try:
                claimed = await asyncio.to_thread(journal.claim_deliveries, self.settings.delivery_batch)
            except Exception as exc:
                log.error("cannot claim deliveries: %s", exc)
                await asyncio.sleep(self.settings.delivery_poll * 4)
                continue
            if not claimed:
                event.clear()
                try:
                    await asyncio.wait_for(event.wait(), timeout=self.settings.delivery_poll)
                except TimeoutError:
                    pass
                continue
            self._claimed.update(d.id for d in claimed)
            for delivery in claimed:
                if self._stopping:
                    break
                await self.deliver(delivery)
                self._claimed.discard(delivery.id)

    async def deliver(self, delivery: ClaimedDelivery) -> str:
        exchange = Exchange(
            body=delivery.body,
            headers=dict(delivery.headers),
            route_id=delivery.route_id,
            message_id=delivery.message_id,
        )
        exchange.headers["esb-delivery-id"] = delivery.id
        exchange.headers["esb-delivery-attempt"] = str(delivery.attempts)
        started = time.perf_counter()
        error: str | None = None
        permanent = False
        try:
            producer = self.engine.context.producer(delivery.destination)
            await asyncio.wait_for(producer.send(exchange), timeout=SEND_TIMEOUT)
        except (PermanentDeliveryError, ComponentError, UriError, NotImplementedError) as exc:
            error, permanent = f"{type(exc).__name__}: {exc}", True
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        elapsed = (time.perf_counter() - started) * 1000
        metrics = self.engine.context.metrics
        if error is None:
            metrics.delivered.labels(delivery.destination).inc()
        else:
            metrics.delivery_failed.labels(delivery.destination).inc()
            log.warning("delivery %s to %s failed (attempt %d): %s",
                        delivery.id, delivery.destination, delivery.attempts, error.split(":")[0])  # fmt: skip
        status = await asyncio.to_thread(
            self.engine.journal.record_attempt,
            delivery,
            error=error,
            permanent=permanent,
            duration_ms=elapsed,
        )
        if status == "dead":
            log.warning("delivery %s to %s is dead after %d attempts",
                        delivery.id, delivery.destination, delivery.attempts)  # fmt: skip
        return status
