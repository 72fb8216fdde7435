"""End-to-end throughput of a real engine over seda: hand-offs, the shortest route there is.

``seda:in -> transform -> to: seda:out`` then a route on ``seda:out`` that
counts. Each message costs what any adapter-to-adapter route costs: accept,
run, complete with a queued delivery, claim, deliver (the next route's accept),
record the attempt, complete. No network or disk adapter is involved, so this
is the engine's own ceiling: journal commits, the event loop, worker threads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

from bench.runner import Figure, Run, percentiles, rate, register
from esb.components import Handler
from esb.exchange import Exchange
from esb.runtime.engine import Engine
from esb.settings import Settings, load_settings

FEEDERS = 4
IDLE_SAMPLES = 200
PACED_SAMPLES = 1000
SEQ = "bench-seq"
BODY = b"<order id='1' priority='routine'><patient>bench</patient><study>CT</study></order>"

ROUTES = {
    "in": """
        route:
          id: in
          from: seda:in
          steps:
            - transform: {python: transforms.common:upper}
            - to: seda:out
    """,
    "out": """
        route:
          id: out
          from: seda:out
          steps:
            - transform: {python: bench.seda:count}
    """,
}


class Tally:
    """When each message reached the counting route; the transform and the bench share one loop."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.changed = asyncio.Event()

    async def until(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrived) < count:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"seda benchmark: {len(self.arrived)} of {count} messages arrived in {timeout:.0f}s")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue


_tally: Tally | None = None


def count(exchange: Exchange) -> None:
    """The counting route's transform (a module-level function so a route can name it)."""
    if _tally is not None:
        _tally.arrived[int(exchange.headers[SEQ])] = time.perf_counter()
        _tally.changed.set()


@register("seda", n=5000, quick_n=40, summary="engine end to end: seda:in -> transform -> seda:out -> count")
def seda_bench(run: Run) -> Iterator[Figure]:
    yield from asyncio.run(_measure(run))


async def _measure(run: Run) -> list[Figure]:
    global _tally
    routes = run.db.scratch / "routes"
    routes.mkdir()
    for stem, text in ROUTES.items():
        (routes / f"{stem}.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    engine = Engine(_settings(run, routes))
    await engine.start()
    _tally = Tally()
    try:
        handler: Handler = engine.context.local_endpoints["seda:in"]
        figures = await _loaded(engine, handler, _tally, run.n)
        throughput = next(f.value for f in figures if f.metric == "end_to_end") or 1.0
        _tally.arrived.clear()
        figures += await _idle(handler, _tally, min(IDLE_SAMPLES, run.n))
        _tally.arrived.clear()
        figures += await _paced(handler, _tally, min(PACED_SAMPLES, run.n), throughput / 2)
        return figures
    finally:
        _tally = None
        await engine.stop()


def _settings(run: Run, routes: Path) -> Settings:
    return dataclasses.replace(
        load_settings(),
        data_dir=run.db.scratch / "var",
        db_url=run.db.url,
        http_port=0,
        route_paths=(routes,),
        node_id="bench",
        shutdown_timeout=10.0,
    )


async def _loaded(engine: Engine, handler: Handler, tally: Tally, n: int) -> list[Figure]:
    """N messages from FEEDERS concurrent callers, as fast as the engine takes them."""

    async def feed(first: int) -> None:
        for seq in range(first, n, FEEDERS):
            await _hand_in(handler, seq)

    begin = time.perf_counter()
    await asyncio.gather(*(feed(i) for i in range(FEEDERS)))
    accepted = time.perf_counter()
    await tally.until(n, timeout=max(60.0, n / 20))
    await _processed(engine, "out", n)
    end = time.perf_counter()
    return [
        Figure("accept_rate", rate(n, accepted - begin), "messages/s"),
        Figure("end_to_end", rate(n, end - begin), "messages/s"),
    ]


async def _hand_in(handler: Handler, seq: int) -> None:
    outcome = await handler(Exchange(body=BODY, headers={SEQ: str(seq)}), False)
    if outcome.status != "accepted":
        raise RuntimeError(f"seda benchmark: message {seq} was {outcome.status} (expected accepted)")


async def _paced(handler: Handler, tally: Tally, count: int, per_second: float) -> list[Figure]:
    """Messages arriving at a steady rate, each on its own (open loop, like independent senders).

    Latency at saturation only measures the backlog the benchmark itself built
    up; at half the measured throughput it shows what a busy but healthy node adds.
    """
    started: dict[int, float] = {}
    tasks: list[asyncio.Task[None]] = []
    begin = time.perf_counter()
    for seq in range(count):
        await asyncio.sleep(max(0.0, begin + seq / per_second - time.perf_counter()))
        started[seq] = time.perf_counter()
        tasks.append(asyncio.create_task(_hand_in(handler, seq)))
    await asyncio.gather(*tasks)
    await tally.until(count, timeout=max(60.0, count / 10))
    return percentiles([tally.arrived[seq] - started[seq] for seq in range(count)], "latency_half_load")


async def _processed(engine: Engine, route_id: str, n: int, timeout: float = 60.0) -> None:
    """Wait for the counting route's journal completions, seen through the engine's own metrics."""
    registry = engine.context.metrics.registry
    deadline = time.monotonic() + timeout
    while (registry.get_sample_value("esb_route_processed_total", {"route": route_id}) or 0) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"seda benchmark: route '{route_id}' did not complete {n} messages in {timeout:.0f}s")
        await asyncio.sleep(0.002)


async def _idle(handler: Handler, tally: Tally, samples: int) -> list[Figure]:
    """One message at a time, each waited for: the latency of an otherwise idle engine."""
    latencies: list[float] = []
    for seq in range(samples):
        begin = time.perf_counter()
        await handler(Exchange(body=BODY, headers={SEQ: str(seq)}), False)
        await tally.until(seq + 1, timeout=30.0)
        latencies.append(tally.arrived[seq] - begin)
    return percentiles(latencies, "latency_idle")
