"""Consistent Time (IHE CT): the clock check against real NTP answers on 127.0.0.1.

An SNTP responder written here (always runs) answers with a chosen skew, so an
excursion can be staged; chrony (Debian, ``ESB_TEST_CHRONY=1``) is the real
server a deployment would run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from esb import audit
from esb.errors import LintError
from esb.security.time import TimeConfig, TimeKeeper, TimeServer, load_time_config, parse_servers
from tests.conftest import write_routes

#: seconds between the NTP era (1900) and the Unix epoch
NTP_EPOCH = 2208988800


def _ntp(seconds: float) -> bytes:
    whole = int(seconds + NTP_EPOCH)
    return struct.pack("!II", whole, int((seconds + NTP_EPOCH - whole) * 2**32))


class SntpResponder:
    """Answers SNTP requests with this machine's time plus ``skew`` seconds (RFC 4330 server mode)."""

    def __init__(self, skew: float = 0.0) -> None:
        self.skew = skew
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                request, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            now = _ntp(time.time() + self.skew)
            header = struct.pack("!BBbbII4s", (0 << 6) | (4 << 3) | 4, 2, 6, -20, 0, 0, b"TEST")
            # reference, originate (the client's transmit time, echoed), receive, transmit
            self.sock.sendto(header + now + request[40:48] + now + now, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def responders() -> Iterator[list[SntpResponder]]:
    made: list[SntpResponder] = []
    yield made
    for responder in made:
        responder.close()


def _keeper(servers: list[SntpResponder], **kwargs: object) -> tuple[TimeKeeper, list[float], list[int]]:
    offsets: list[float] = []
    failures: list[int] = []
    config = TimeConfig(servers=tuple(TimeServer("127.0.0.1", s.port) for s in servers), threshold=1.0, timeout=1.0)
    keeper = TimeKeeper(
        config,
        node="n1",
        on_offset=offsets.append,
        on_failure=lambda: failures.append(1),
        **kwargs,  # type: ignore[arg-type]
    )
    return keeper, offsets, failures


def _time_alerts() -> list[str]:
    """Outcome descriptions of the Consistent Time security alerts emitted so far."""
    return [
        e.outcome_description or ""
        for e in audit.captured()
        if any(code.code == "consistent-time" for code in e.type_codes)
    ]


def test_servers_are_host_and_optional_port() -> None:
    assert parse_servers("ntp1.example.org, 127.0.0.1:11123,") == (
        TimeServer("ntp1.example.org", 123),
        TimeServer("127.0.0.1", 11123),
    )
    assert parse_servers("") == ()
    with pytest.raises(ValueError, match="'127.0.0.1:70000': the port must be a number"):
        parse_servers("127.0.0.1:70000")
    with pytest.raises(ValueError, match="names no host"):
        parse_servers(":123")


def test_a_bad_config_names_file_line_and_column(tmp_path: Path) -> None:
    file = tmp_path / "time.yaml"
    file.write_text("servers: 127.0.0.1:x\ninterval: soon\n", encoding="utf-8")
    with pytest.raises(LintError) as raised:
        load_time_config(file)
    text = str(raised.value)
    assert f"{file}:1:10" in text and "port must be a number" in text
    assert f"{file}:2:11" in text and "interval" in text


def test_the_shipped_config_checks_nothing_until_servers_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESB_NTP_SERVERS", raising=False)
    assert load_time_config().servers == ()
    monkeypatch.setenv("ESB_NTP_SERVERS", "127.0.0.1:11123")
    monkeypatch.setenv("ESB_NTP_THRESHOLD", "250ms")
    config = load_time_config()
    assert (config.servers, config.threshold) == ((TimeServer("127.0.0.1", 11123),), 0.25)


def test_a_clock_in_step_raises_no_alarm(responders: list[SntpResponder]) -> None:
    responders.append(SntpResponder(skew=0.0))
    keeper, offsets, failures = _keeper(responders)
    audit.clear_captured()
    reading = keeper.check()
    assert reading.offset is not None and abs(reading.offset) < 0.5
    assert offsets == [reading.offset] and failures == []
    assert not keeper.out_of_step and _time_alerts() == []


def test_an_excursion_is_warned_and_audited_once_and_so_is_the_return(responders: list[SntpResponder]) -> None:
    server = SntpResponder(skew=5.0)
    responders.append(server)
    keeper, offsets, _ = _keeper(responders)
    audit.clear_captured()
    keeper.check()
    keeper.check()
    assert keeper.out_of_step and all(4.5 < offset < 5.5 for offset in offsets)
    alerts = _time_alerts()
    assert len(alerts) == 1 and "exceeds 1s" in alerts[0]
    server.skew = 0.0
    keeper.check()
    assert not keeper.out_of_step
    assert len(_time_alerts()) == 2 and "back in step" in _time_alerts()[1]


def test_the_median_of_the_servers_counts(responders: list[SntpResponder]) -> None:
    """One server far off does not raise the alarm when the others agree with us."""
    responders.extend([SntpResponder(0.0), SntpResponder(0.0), SntpResponder(30.0)])
    keeper, _, _ = _keeper(responders)
    reading = keeper.check()
    assert reading.answered == 3 and reading.offset is not None and abs(reading.offset) < 0.5
    assert not keeper.out_of_step


def test_no_answer_counts_as_unchecked_not_as_in_step() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        config = TimeConfig(servers=(TimeServer("127.0.0.1", silent.getsockname()[1]),), timeout=0.3)
        failures: list[int] = []
        keeper = TimeKeeper(config, node="n1", on_failure=lambda: failures.append(1))
        reading = keeper.check()
    finally:
        silent.close()
    assert reading.offset is None and reading.answered == 0 and failures == [1]


@pytest.fixture
def chrony(tmp_path: Path) -> Iterator[int]:
    if not os.environ.get("ESB_TEST_CHRONY"):
        pytest.skip("ESB_TEST_CHRONY is not set")
    chronyd = shutil.which("chronyd") or "/usr/sbin/chronyd"
    assert Path(chronyd).exists(), "ESB_TEST_CHRONY is set but chronyd is not installed (apt-get install chrony)"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = tmp_path / "chrony.conf"
    conf.write_text(
        f"port {port}\nbindaddress 127.0.0.1\ncmdport 0\nlocal stratum 8\nallow 127.0.0.1\n"
        f"pidfile {tmp_path}/chronyd.pid\ndriftfile {tmp_path}/drift\n",
        encoding="utf-8",
    )
    # -x: serve time without touching this machine's clock; -u root: keep access to the temp dir
    process = subprocess.Popen([chronyd, "-f", str(conf), "-d", "-x", "-u", "root"], stderr=subprocess.DEVNULL)
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_the_clock_is_checked_against_a_real_chrony_server(chrony: int) -> None:
    config = TimeConfig(servers=(TimeServer("127.0.0.1", chrony),), timeout=1.0)
    keeper = TimeKeeper(config, node="n1")
    reading = keeper.check()
    for _ in range(20):  # chronyd takes a moment to open its port
        if reading.offset is not None:
            break
        time.sleep(0.25)
        reading = keeper.check()
    assert reading.offset is not None and abs(reading.offset) < 0.5
    assert not keeper.out_of_step


async def test_a_running_engine_exports_its_clock_offset(
    start_engine: Any, responders: list[SntpResponder], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_routes(tmp_path / "routes", {"noop": "route:\n  id: noop\n  from: direct:noop\n  steps:\n    - log: noop\n"})
    server = SntpResponder(skew=3.0)
    responders.append(server)
    monkeypatch.setenv("ESB_NTP_SERVERS", f"127.0.0.1:{server.port}")
    engine = await start_engine()
    gauge = engine.context.metrics.clock_offset
    for _ in range(100):
        if gauge._value.get() != 0.0:
            break
        await asyncio.sleep(0.05)
    assert 2.5 < gauge._value.get() < 3.5
