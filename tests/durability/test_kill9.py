"""Nothing accepted is lost: real engine processes, real HTTP, a real `kill -9`.

The engine answers 202 only after the journal commit. We kill it with SIGKILL
right after the replies (deliveries pending, and routes still running), start
it again, and expect every accepted message at the destination exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EngineProcess:
    """`esb run` in a subprocess with its own ports, data dir and routes."""

    def __init__(self, tmp: Path, routes: dict[str, str], db_url: str | None = None, **env: str) -> None:
        self.tmp = tmp
        self.http_port = free_port()
        routes_dir = tmp / "routes"
        routes_dir.mkdir(parents=True, exist_ok=True)
        for stem, text in routes.items():
            (routes_dir / f"{stem}.yaml").write_text(textwrap.dedent(text).lstrip())
        self.env = {
            **os.environ,
            "ESB_HTTP_PORT": str(self.http_port),
            "ESB_MLLP_PORT": str(free_port()),
            "ESB_DICOM_PORT": str(free_port()),
            "ESB_DATA_DIR": str(tmp / "var"),
            "ESB_ROUTES": str(routes_dir),
            "ESB_DELIVERY_POLL": "100ms",
            "ESB_LOG_LEVEL": "info",
            "PYTHONPATH": str(ROOT),
            **env,
        }
        if db_url:
            self.env["ESB_DB_URL"] = db_url
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tmp / "engine.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "esb.cli", "run"], cwd=ROOT, env=self.env, stdout=log, stderr=log
            )

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as client:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.log.read_text()
                try:
                    async with client.get(f"{self.base}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"engine not ready in {timeout}s:\n{self.log.read_text()}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def engines() -> Iterator[list[EngineProcess]]:
    started: list[EngineProcess] = []
    yield started
    for engine in started:
        if engine.process is not None and engine.process.poll() is None:
            engine.process.kill()
            engine.process.wait()


class Sink:
    """The destination peer: records every body it is sent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[bytes] = []
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def accept(request: web.Request) -> web.Response:
            self.received.append(await request.read())
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/sink", accept)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def relay_route(sink_port: int, slow: bool) -> str:
    transform = '    - transform: {python: "tests.routing.helpers:slow"}\n' if slow else ""
    return (
        "route:\n"
        "  id: relay\n"
        "  from: http://127.0.0.1:${ESB_HTTP_PORT}/in?reply=accepted\n"
        "  steps:\n"
        + transform
        + f'    - to: {{uri: "http://127.0.0.1:{sink_port}/sink", retry: {{max_attempts: 1000, delay: 200ms, '
        "multiplier: 1}}\n"
    )


@pytest.mark.parametrize("slow", [False, True], ids=["pending-deliveries", "routes-in-flight"])
async def test_accepted_messages_survive_kill9(
    tmp_path: Path, engines: list[EngineProcess], db_url: str, slow: bool
) -> None:
    sink_port = free_port()
    engine = EngineProcess(tmp_path, {"relay": relay_route(sink_port, slow)}, db_url=db_url)
    engines.append(engine)
    engine.start()
    await engine.wait_ready()
    bodies = [f"message {i}".encode() for i in range(20)]
    async with aiohttp.ClientSession() as client:
        for body in bodies:
            async with client.post(f"{engine.base}/in", data=body) as response:
                assert response.status == 202, await response.text()
    engine.kill9()  # the sink is down: nothing could be delivered yet

    sink = Sink(sink_port)
    await sink.start()
    try:
        engine.start()
        await engine.wait_ready()
        await wait_until(lambda: len(sink.received) >= len(bodies), 30, "all messages at the sink")
        await asyncio.sleep(0.5)  # a duplicate would arrive within a delivery round
        assert sorted(sink.received) == sorted(bodies)
        assert engine.terminate() == 0
    finally:
        await sink.stop()


async def test_second_instance_runs_beside_the_first(tmp_path: Path, engines: list[EngineProcess]) -> None:
    route = """
        route:
          id: echo
          from: http://127.0.0.1:${ESB_HTTP_PORT}/echo
          steps:
            - to: service:echo/echo
    """
    first = EngineProcess(tmp_path / "one", {"echo": route})
    second = EngineProcess(tmp_path / "two", {"echo": route})
    engines.extend([first, second])
    first.start()
    second.start()
    await first.wait_ready()
    await second.wait_ready()
    async with aiohttp.ClientSession() as client:
        for engine in (first, second):
            async with client.post(f"{engine.base}/echo", data=b"ping") as response:
                assert response.status == 200
                assert await response.read() == b"ping"
    assert (tmp_path / "one" / "var" / "esb.db").exists() and (tmp_path / "two" / "var" / "esb.db").exists()
    assert first.terminate() == 0 and second.terminate() == 0
