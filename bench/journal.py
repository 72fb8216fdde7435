"""Journal commit rate: what the durable-first promise costs per message.

Every message the engine takes costs at least two commits (accept before the
caller is answered, complete with its queued deliveries afterwards), and every
delivery two more (claim, record the attempt). These figures are the ceiling
for any route, whatever its adapters: measured straight on
:class:`esb.journal.Journal` without an event loop in the way, in one thread
and in four (the engine calls the journal from worker threads).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from bench.runner import Figure, Run, percentiles, rate, register
from esb.exchange import Exchange
from esb.journal import Journal, NewDelivery
from esb.journal.schema import deliveries
from esb.journal.store import ClaimedDelivery
from esb.routes.model import RetryPolicy

THREADS = 4
#: about the size of an HL7 v2 ADT message
BODY = (b"MSH|^~\\&|HIS|HOSP|EMPI|REGION|20261129120000||ADT^A01|MSG0001|P|2.5\r" + b"PID|1||12345^^^HOSP" * 48)[:1024]
DESTINATION = "seda:out"
RETRY = RetryPolicy()


def accept_complete(journal: Journal) -> None:
    """One message the way the engine handles it: journal it, then finish it with one delivery."""
    exchange = Exchange(body=BODY, headers={"bench": "1"})
    message_id = journal.accept(exchange, route_id="bench", source="seda:in", store_mode="full", claim=True)
    delivery = NewDelivery(destination=DESTINATION, body=BODY, headers={"bench": "1"}, retry=RETRY)
    journal.complete(message_id, status="processed", new_deliveries=[delivery])


def deliver_batch(journal: Journal) -> int:
    """Claim a batch like a delivery worker does and record a successful attempt for each."""
    claimed: list[ClaimedDelivery] = journal.claim_deliveries(32)
    for delivery in claimed:
        journal.record_attempt(delivery, error=None, duration_ms=0.1)
    return len(claimed)


def _in_threads(work: Callable[[int], int], shares: list[int]) -> tuple[int, float]:
    """Run ``work(share)`` for each share, one thread each; returns (items done, seconds)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(len(shares)) as pool:
        done = sum(pool.map(work, shares))
    return done, time.perf_counter() - started


@register("journal", n=5000, quick_n=50, summary="journal accept+complete and claim+record rates, 1 and 4 threads")
def journal_bench(run: Run) -> Iterator[Figure]:
    journal = Journal(run.db.url, node_id="bench")
    try:
        journal.upgrade()
        yield from _messages(journal, run.n)
        yield from _deliveries(journal, run.n)
    finally:
        journal.close()


def _messages(journal: Journal, n: int) -> Iterator[Figure]:
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(n):
        before = time.perf_counter()
        accept_complete(journal)
        latencies.append(time.perf_counter() - before)
    yield Figure("accept_complete_1_thread", rate(n, time.perf_counter() - started), "messages/s")
    yield from percentiles(latencies, "accept_complete_1_thread_latency")

    def share(count: int) -> int:
        for _ in range(count):
            accept_complete(journal)
        return count

    done, seconds = _in_threads(share, [n // THREADS + (i < n % THREADS) for i in range(THREADS)])
    yield Figure(f"accept_complete_{THREADS}_threads", rate(done, seconds), "messages/s")


def _deliveries(journal: Journal, n: int) -> Iterator[Figure]:
    """Drain the 2n queued deliveries: the first n in one thread, the rest in THREADS."""
    done = 0
    started = time.perf_counter()
    while done < n:
        got = deliver_batch(journal)
        if not got:
            break
        done += got
    yield Figure("claim_record_1_thread", rate(done, time.perf_counter() - started), "deliveries/s")

    def drain(_: int) -> int:
        total = 0
        while got := deliver_batch(journal):
            total += got
        return total

    done, seconds = _in_threads(drain, [0] * THREADS)
    yield Figure(f"claim_record_{THREADS}_threads", rate(done, seconds), "deliveries/s")
    left = _undelivered(journal)
    if left:
        raise RuntimeError(f"journal benchmark: {left} deliveries were not delivered (expected 0)")


def _undelivered(journal: Journal) -> int:
    with journal.engine.connect() as conn:
        query = select(func.count()).select_from(deliveries).where(deliveries.c.status != "delivered")
        return int(conn.execute(query).scalar_one())
