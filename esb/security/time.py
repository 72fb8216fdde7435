"""Consistent Time (IHE CT, ITI-1): how far this node's clock is from the domain's NTP servers.

The engine does not set the clock (chrony or ntpd does, with privileges the
engine must not have); it checks it. Audit records, message timestamps, lease
expiries and WS-Security timestamps compare times taken on different nodes, so
a node whose clock drifts silently corrupts all of them: the offset is exported
as a metric (``esb_clock_offset_seconds``), and an offset beyond the threshold
is logged at WARNING and audited once per excursion (again when it returns in
step). ntplib speaks SNTP; the offset is the median over the servers that
answered, so one bad server does not raise the alarm.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ntplib

from esb.errors import LintError
from esb.settings import PACKAGE_ROOT
from esb.yamlnodes import read_config

log = logging.getLogger("esb.time")

DEFAULT_FILE = PACKAGE_ROOT / "config" / "time.yaml"
NTP_PORT = 123


@dataclass(frozen=True)
class TimeServer:
    host: str
    port: int = NTP_PORT

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TimeConfig:
    servers: tuple[TimeServer, ...] = ()
    interval: float = 300.0
    threshold: float = 1.0
    timeout: float = 2.0


def parse_servers(text: str) -> tuple[TimeServer, ...]:
    """``host[:port]`` items, comma-separated; ValueError names the bad one."""
    servers = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, port = item, NTP_PORT
        if item.count(":") == 1:  # host:port; an IPv6 literal has more colons and takes the default port
            host, _, number = item.partition(":")
            if not number.isdigit() or not 0 < int(number) < 65536:
                raise ValueError(f"'{item}': the port must be a number from 1 to 65535")
            port = int(number)
        if not host:
            raise ValueError(f"'{item}' names no host (e.g. 127.0.0.1:123)")
        servers.append(TimeServer(host, port))
    return tuple(servers)


def load_time_config(path: Path | None = None) -> TimeConfig:
    """``config/time.yaml`` (or ``ESB_TIME_CONFIG``); errors name file:line:column."""
    file = Path(path or os.environ.get("ESB_TIME_CONFIG") or DEFAULT_FILE)
    if not file.exists():
        return TimeConfig()
    nodes, keys = read_config(file, "time", ["servers", "interval", "threshold", "timeout"], title="time")
    values: dict[str, object] = {}
    if "servers" in keys:
        try:
            values["servers"] = parse_servers(nodes.string(keys["servers"][1], "servers") or "")
        except ValueError as exc:
            nodes.error(keys["servers"][1], f"servers: {exc}")
    for name in ("interval", "threshold", "timeout"):
        if name in keys:
            values[name] = nodes.duration(keys[name][1], name, positive=True)
    if nodes.errors:
        raise LintError(nodes.errors)
    return TimeConfig(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Reading:
    """One check: each server's offset (None: no answer) and their median."""

    offsets: dict[str, float | None]
    offset: float | None

    @property
    def answered(self) -> int:
        return sum(value is not None for value in self.offsets.values())


def query(server: TimeServer, timeout: float) -> float:
    """Seconds to add to this node's clock to match ``server`` (ntplib's offset, RFC 4330)."""
    return float(ntplib.NTPClient().request(server.host, version=4, port=server.port, timeout=timeout).offset)


class TimeKeeper:
    """Checks the clock, exports the offset, warns and audits an excursion once."""

    def __init__(
        self,
        config: TimeConfig,
        *,
        node: str,
        on_offset: Callable[[float], None] = lambda _offset: None,
        on_failure: Callable[[], None] = lambda: None,
        ask: Callable[[TimeServer, float], float] = query,
    ) -> None:
        self.config = config
        self.node = node
        self.on_offset = on_offset
        self.on_failure = on_failure
        self.ask = ask
        #: whether the last reading was beyond the threshold (an excursion is reported once)
        self.out_of_step = False

    def check(self) -> Reading:
        """Ask every server (blocking; run it in a thread) and act on the median offset."""
        offsets: dict[str, float | None] = {}
        for server in self.config.servers:
            try:
                offsets[str(server)] = self.ask(server, self.config.timeout)
            except (ntplib.NTPException, OSError) as exc:
                offsets[str(server)] = None
                log.debug("time server %s did not answer: %s", server, exc)
        answered = [value for value in offsets.values() if value is not None]
        reading = Reading(offsets, statistics.median(answered) if answered else None)
        if reading.offset is None:
            self.on_failure()
            log.warning("no time server answered (%s): the clock is unchecked", ", ".join(offsets))
            return reading
        self.on_offset(reading.offset)
        beyond = abs(reading.offset) > self.config.threshold
        if beyond != self.out_of_step:
            self.out_of_step = beyond
            self._report(reading.offset, beyond)
        return reading

    def _report(self, offset: float, beyond: bool) -> None:
        from esb.audit import emit, events

        threshold = self.config.threshold
        if beyond:
            detail = f"clock offset {offset:+.3f}s exceeds {threshold:g}s"
            log.warning("node %s: %s (IHE CT); check its NTP service", self.node, detail)
        else:
            detail = f"clock back in step: offset {offset:+.3f}s within {threshold:g}s"
            log.info("node %s: %s", self.node, detail)
        emit(events.security_alert(kind="consistent-time", detail=detail, peer_host=None, user=None))

    async def run(self) -> None:
        """Check at start, then every ``interval``, until the engine cancels it."""
        while True:
            try:
                await asyncio.to_thread(self.check)
            except Exception as exc:  # a bug here must not stop the engine: say so and keep checking
                log.error("the clock check failed: %s", type(exc).__name__)
            await asyncio.sleep(self.config.interval)
