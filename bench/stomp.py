"""STOMP relay: queue IN -> journal -> ``to:`` queue OUT on RabbitMQ, in messages/s.

The JMS-bridge case of issue 6 with every promise it makes: each message is
journaled before its ACK (client-individual), queued as a durable delivery,
SENT persistently and counted delivered only after the broker's RECEIPT.
IN is filled beforehand (persistent, by this process) and the engine starts
on a full queue, so the figure is the engine's; a separate process reads OUT
(the way a downstream system would), so the reader does not share the
engine's interpreter. ``intake`` is IN drained and ACKed, ``end_to_end`` the
last message read from OUT.

The broker: ESB_BENCH_STOMP_URL, else ESB_TEST_STOMP_URL, else
stomp://guest:guest@127.0.0.1:61613; skipped when nothing listens there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bench.runner import Figure, Run, rate, register
from esb.runtime.engine import Engine
from esb.settings import load_settings

DEFAULT_URL = "stomp://guest:guest@127.0.0.1:61613"
#: an HL7 v2 ADT of about 1 KiB, what such a bridge usually carries
BODY = (b"MSH|^~\\&|HIS|HOSP|ESB|HUB|20261129120000||ADT^A08^ADT_A01|MSG1|P|2.5\rPID|1||12345^^^HOSP^MR" * 20)[:1024]


@dataclasses.dataclass(frozen=True)
class Target:
    host: str
    port: int
    login: str
    passcode: str

    @classmethod
    def from_env(cls) -> Target:
        url = os.environ.get("ESB_BENCH_STOMP_URL") or os.environ.get("ESB_TEST_STOMP_URL") or DEFAULT_URL
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 61613,
                   unquote(parts.username or "guest"), unquote(parts.password or "guest"))  # fmt: skip

    def uri(self, queue: str, query: str = "") -> str:
        return f"stomp://{self.login}:{self.passcode}@{self.host}:{self.port}/queue/{queue}{query}"

    def reachable(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False


def connect(target: Target, listener: Any = None) -> Any:
    import stomp

    conn = stomp.Connection12([(target.host, target.port)], try_loopback_connect=False, vhost="/",
                              auto_decode=False, reconnect_attempts_max=1)  # fmt: skip
    if listener is not None:
        conn.set_listener("bench", listener)
    conn.connect(target.login, target.passcode, wait=True)
    return conn


def preload(target: Target, queue: str, n: int) -> float:
    """Fill the queue with n persistent messages; one receipt at the end covers them all (frames are in order)."""
    import stomp

    done = threading.Event()

    class Receipts(stomp.ConnectionListener):  # type: ignore[misc]
        def on_receipt(self, frame: Any) -> None:
            done.set()

    conn = connect(target, Receipts())
    started = time.perf_counter()
    try:
        for index in range(n):
            headers = {"persistent": "true", "esb-message-id": f"bench-{index}"}
            if index == n - 1:
                headers["receipt"] = "last"
            conn.send(f"/queue/{queue}", BODY, headers=headers)
        if not done.wait(max(60.0, n / 100)):
            raise TimeoutError("stomp benchmark: the broker did not confirm the preload")
        return time.perf_counter() - started
    finally:
        conn.disconnect()


@register("stomp", n=5000, quick_n=50, summary="STOMP queue -> journal -> to: STOMP queue on RabbitMQ, messages/s")
def stomp_bench(run: Run) -> Iterator[Figure]:
    target = Target.from_env()
    if not target.reachable():
        yield Figure("end_to_end", skipped=f"no STOMP broker at {target.host}:{target.port}")
        return
    yield from asyncio.run(_measure(run, target))


async def _measure(run: Run, target: Target) -> list[Figure]:
    tag = uuid.uuid4().hex[:10]
    inbox, outbox = f"bench-in-{tag}", f"bench-out-{tag}"
    routes = run.db.scratch / "routes"
    routes.mkdir()
    source = target.uri(inbox, "?prefetch=200")
    text = f'route:\n  id: relay\n  from: "{source}"\n  steps:\n    - to: "{target.uri(outbox)}"\n'
    (routes / "relay.yaml").write_text(text, encoding="utf-8")
    settings = dataclasses.replace(
        load_settings(),
        data_dir=run.db.scratch / "var",
        db_url=run.db.url,
        http_port=0,
        route_paths=(routes,),
        node_id="bench",
        shutdown_timeout=10.0,
    )
    try:
        loaded = await asyncio.to_thread(preload, target, inbox, run.n)
        reader = await _start_reader(target, outbox, run.n)
        engine = Engine(settings)
        await engine.start()
        begin = time.monotonic()
        try:
            consumer: Any = engine.routes["relay"].consumer
            intake = await _until(lambda: consumer.acked >= run.n, run.n, "taken from IN")
            out, _ = await asyncio.wait_for(reader.communicate(), timeout=max(120.0, run.n / 20))
        finally:
            await engine.stop()
        if reader.returncode != 0:
            raise RuntimeError(f"stomp benchmark: the OUT reader failed (exit {reader.returncode})")
        last = float(json.loads(out.splitlines()[-1])["last"])
    finally:
        await asyncio.to_thread(_delete_queues, inbox, outbox)
    return [
        Figure("preload", rate(run.n, loaded), "messages/s"),
        Figure("intake", rate(run.n, intake - begin), "messages/s"),
        Figure("end_to_end", rate(run.n, last - begin), "messages/s"),
    ]


async def _start_reader(target: Target, queue: str, n: int) -> asyncio.subprocess.Process:
    """The OUT reader process; returns once it is subscribed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.stomp", json.dumps(dataclasses.asdict(target)), queue, str(n),
        stdout=asyncio.subprocess.PIPE, cwd=str(Path(__file__).resolve().parents[1]),
    )  # fmt: skip
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    if ready.strip() != b"ready":
        raise RuntimeError("stomp benchmark: the OUT reader did not subscribe")
    return process


async def _until(check: Any, n: int, what: str) -> float:
    deadline = time.monotonic() + max(120.0, n / 20)
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"stomp benchmark: not all {n} messages were {what} in time")
        await asyncio.sleep(0.01)
    return time.monotonic()


def _delete_queues(*names: str) -> None:
    """Best effort: the queues are durable and would pile up run after run (needs rabbitmqctl, as root)."""
    tool = shutil.which("rabbitmqctl")
    if tool is not None:
        for name in names:
            subprocess.run([tool, "-q", "delete_queue", name], capture_output=True, check=False, timeout=60)


# -- the OUT reader process ------------------------------------------------------------------


def read(target: Target, queue: str, n: int) -> dict[str, float]:
    """Read n messages (auto ACK); the time.monotonic() of the last one (the clock is system-wide)."""
    import stomp

    arrived = threading.Event()
    count = 0
    last = 0.0

    class Counter(stomp.ConnectionListener):  # type: ignore[misc]
        def on_message(self, frame: Any) -> None:
            nonlocal count, last
            count += 1
            if count == n:
                last = time.monotonic()
                arrived.set()

        def on_receipt(self, frame: Any) -> None:
            if frame.headers.get("receipt-id") == "subscribed":
                print("ready", flush=True)

    conn = connect(target, Counter())
    try:
        conn.subscribe(f"/queue/{queue}", "bench-reader", ack="auto", headers={"receipt": "subscribed"})
        if not arrived.wait(max(120.0, n / 20)):
            raise TimeoutError(f"stomp benchmark reader: {count} of {n} messages came")
    finally:
        conn.disconnect()
    return {"last": last}


if __name__ == "__main__":
    target_arg, queue_arg, n_arg = sys.argv[1:4]
    print(json.dumps(read(Target(**json.loads(target_arg)), queue_arg, int(n_arg))), flush=True)
