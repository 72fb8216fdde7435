"""Bare MLLP ACK rate: how fast the listener takes messages when the route does nothing but journal.

``from: mllp://127.0.0.1:0?ack=original`` with no steps: each message is read,
its MSH parsed, its control id claimed in the duplicate table, the message
journaled, and AA sent back. Four senders, each on its own connection, send
one message and wait for its ACK before the next (the way HL7 senders work);
they run in a separate process, as real senders would, so the engine's
process has its core to itself. Measured with duplicate detection on (the
default) and off (``dedup_window=0``), which costs one claim transaction per
message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

from bench.runner import Figure, Run, percentiles, rate, register
from esb.runtime.engine import Engine
from esb.settings import load_settings

SENDERS = 4
WARM_UP = 100
ROUTES = {
    "dedup": "mllp://127.0.0.1:0?ack=original",
    "nodedup": "mllp://127.0.0.1:0?ack=original&dedup_window=0",
}


def message(prefix: str, seq: int) -> bytes:
    return (
        f"MSH|^~\\&|HIS|HOSP|EMPI|REGION|20261129120000||ADT^A01^ADT_A01|{prefix}-{seq}|P|2.5\r"
        "EVN|A01|20261129120000\r"
        f"PID|1||{seq}^^^HOSP^MR||Zhang^San||19800101|M|||Road 1^^Beijing^^100000^CHN\r"
        "PV1|1|O\r"
    ).encode()


@register("mllp", n=5000, quick_n=40, summary="bare MLLP ACK rate: 4 senders, ack=original, route only journals")
def mllp_bench(run: Run) -> Iterator[Figure]:
    yield from asyncio.run(_measure(run))


async def _measure(run: Run) -> list[Figure]:
    routes = run.db.scratch / "routes"
    routes.mkdir()
    for route_id, uri in ROUTES.items():
        text = f"route:\n  id: {route_id}\n  from: {uri}\n  steps: []\n"
        (routes / f"{route_id}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    settings = dataclasses.replace(
        load_settings(),
        data_dir=run.db.scratch / "var",
        db_url=run.db.url,
        http_port=0,
        route_paths=(routes,),
        node_id="bench",
        shutdown_timeout=10.0,
    )
    engine = Engine(settings)
    await engine.start()
    figures: list[Figure] = []
    try:
        for route_id, suffix in (("dedup", ""), ("nodedup", "_no_dedup")):
            consumer = engine.routes[route_id].consumer
            port = int(consumer.port)  # type: ignore[union-attr]
            seconds, latencies = await _senders(port, run.n, route_id)
            figures.append(Figure(f"ack_rate{suffix}", rate(run.n, seconds), "messages/s"))
            figures += percentiles(latencies, f"ack_latency{suffix}")
    finally:
        await engine.stop()
    return figures


async def _senders(port: int, n: int, prefix: str) -> tuple[float, list[float]]:
    """Run the senders in a child process; returns (seconds for n messages, ACK latencies)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.mllp", str(port), str(n), prefix,
        stdout=asyncio.subprocess.PIPE, cwd=str(Path(__file__).resolve().parents[1]),
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=max(120.0, n / 20))
    if process.returncode != 0:
        raise RuntimeError(f"mllp benchmark: the senders failed (exit {process.returncode})")
    result = json.loads(out)
    return float(result["seconds"]), [float(x) for x in result["latencies"]]


# -- the sender process ----------------------------------------------------------------


async def _sender(port: int, sequence: range, prefix: str, latencies: list[float]) -> None:
    from hl7.mllp import open_hl7_connection

    reader, writer = await open_hl7_connection("127.0.0.1", port)
    try:
        for seq in sequence:
            started = time.perf_counter()
            writer.writeblock(message(prefix, seq))
            await writer.drain()
            ack: bytes = await reader.readblock()
            if f"MSA|AA|{prefix}-{seq}".encode() not in ack:
                raise RuntimeError(f"mllp benchmark: message {seq} was not answered AA: {ack[:120]!r}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _send_all(port: int, n: int, prefix: str) -> dict[str, object]:
    warm: list[float] = []
    await asyncio.gather(*(_sender(port, range(-WARM_UP + i, 0, SENDERS), prefix, warm) for i in range(SENDERS)))
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_sender(port, range(i, n, SENDERS), prefix, latencies) for i in range(SENDERS)))
    return {"seconds": time.perf_counter() - started, "latencies": latencies}


if __name__ == "__main__":
    port_arg, n_arg, prefix_arg = sys.argv[1:4]
    print(json.dumps(asyncio.run(_send_all(int(port_arg), int(n_arg), prefix_arg))))
