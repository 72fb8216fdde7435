"""Audit Record Repositories for tests: a syslog receiver in Python (always) and rsyslog from Debian.

:class:`PySyslog` listens for RFC 5425 (TLS, octet counting) and RFC 5426
(UDP) on 127.0.0.1 in an event loop of its own thread, so synchronous and
asynchronous tests use it alike, parses each message strictly (a framing or
header error fails the test that reads it) and can be stopped and started
again on the same ports, like an ARR that goes down for a while.

:class:`Rsyslog` runs a private ``rsyslogd -n`` (imtcp with the gtls driver,
imudp) with its own config, pid file and work directory in a temp dir,
writing what it receives to a file read back here. ``ESB_TEST_RSYSLOG=1``
turns it on; set but not working, the tests that need it fail.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
WAIT = 20.0
HEADER = re.compile(
    rb"<(?P<pri>\d{1,3})>(?P<version>1) (?P<timestamp>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) "
    rb"(?P<msgid>\S+) (?P<sd>-|(?:\[[^\]]*\])+) "
)
RECORD_ID = re.compile(r'\[esb@32473 id="([0-9a-f]+)"\]')


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll until ``probe`` gives something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One syslog message as the receiver parsed it."""

    transport: str
    pri: int
    timestamp: str
    host: str
    app: str
    procid: str
    msgid: str
    sd: str
    body: bytes  # after the header: BOM + XML

    @property
    def record_id(self) -> str:
        found = RECORD_ID.search(self.sd)
        assert found, f"no record id in structured data {self.sd!r}"
        return found.group(1)

    @property
    def xml(self) -> bytes:
        assert self.body.startswith(b"\xef\xbb\xbf"), "the MSG does not start with a UTF-8 BOM (RFC 5424 6.4)"
        return self.body[3:]


def parse(data: bytes, transport: str) -> Received:
    found = HEADER.match(data)
    assert found, f"not an RFC 5424 message: {data[:120]!r}"
    g = {k: v.decode("ascii") for k, v in found.groupdict().items()}
    return Received(transport, int(g["pri"]), g["timestamp"], g["host"], g["app"], g["procid"], g["msgid"], g["sd"],
                    data[found.end():])  # fmt: skip


class PySyslog:
    """An RFC 5425/5426 receiver; ``context`` decides whether it asks for a client certificate."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.tls_port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.messages: list[Received] = []
        self.errors: list[str] = []
        self.peers: list[Any] = []  # client certificates seen (None: none presented)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="py-syslog", daemon=True)
        self.thread.start()
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._lock = threading.Lock()
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def start(self) -> None:
        self._run(self._start())

    def stop(self) -> None:
        self._run(self._stop())

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @property
    def record_ids(self) -> list[str]:
        with self._lock:
            return [m.record_id for m in self.messages]

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.tls_port, ssl=self.context,
                                                  reuse_address=True)  # fmt: skip
        receiver = self

        class Datagrams(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                receiver._keep(data, "udp")

        transport, _ = await self.loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", self.udp_port))
        self._udp = transport

    async def _stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):  # an ARR going down drops its connections too
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def _keep(self, data: bytes, transport: str) -> None:
        try:
            message = parse(data, transport)
        except AssertionError as exc:
            self.errors.append(str(exc))
            return
        with self._lock:
            self.messages.append(message)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peercert"))
        self._writers.add(writer)
        try:
            while True:
                length = await reader.readuntil(b" ")
                if not length[:-1].isdigit():
                    self.errors.append(f"no octet count before a message: {length[:40]!r}")
                    return
                self._keep(await reader.readexactly(int(length[:-1])), "tls")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class Rsyslog:
    """A private rsyslogd: TLS (gtls driver, anonymous clients) and UDP on 127.0.0.1, records to a file."""

    def __init__(self, directory: Path, ca: Path, cert: Path, key: Path) -> None:
        self.directory = directory
        self.tls_port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.out = directory / "received.log"
        self.pidfile = directory / "rsyslogd.pid"
        (directory / "work").mkdir(parents=True, exist_ok=True)
        self.conf = directory / "rsyslog.conf"
        self.conf.write_text(
            f"""
global(workDirectory="{directory / "work"}" maxMessageSize="256k"
       DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{self.tls_port}" address="127.0.0.1")
module(load="imudp")
input(type="imudp" port="{self.udp_port}" address="127.0.0.1")
template(name="audit" type="string" string="%msgid% %app-name% %structured-data% %msg%\\n")
action(type="omfile" file="{self.out}" template="audit")
""",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
        if not Path(binary).exists():
            pytest.fail(
                "ESB_TEST_RSYSLOG is set but rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls)"
            )
        self.pidfile.unlink(missing_ok=True)
        command = [binary, "-n", "-f", str(self.conf), "-i", str(self.pidfile)]
        self.process = subprocess.Popen(command, cwd=self.directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def listening() -> bool:
            if self.process is not None and self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""
                pytest.fail(f"rsyslogd exited with {self.process.returncode}: {output}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.tls_port)) == 0

        wait_for("rsyslogd listening", listening)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def close(self) -> None:
        self.stop()

    @property
    def messages(self) -> list[Received]:
        if not self.out.exists():
            return []
        found = []
        for line in self.out.read_bytes().splitlines():
            msgid, app, rest = line.split(b" ", 2)
            sd, _, body = rest.partition(b"] ")
            found.append(Received("rsyslog", 85, "", "", app.decode(), "", msgid.decode(), sd.decode() + "]", body))
        return found

    @property
    def record_ids(self) -> list[str]:
        return [m.record_id for m in self.messages]


def rsyslog_wanted() -> bool:
    """ESB_TEST_RSYSLOG unset: skip; set: rsyslog must work (os.environ read at call time)."""
    if not os.environ.get("ESB_TEST_RSYSLOG"):
        pytest.skip("ESB_TEST_RSYSLOG is not set (apt-get install rsyslog rsyslog-gnutls, then set it)")
    return True
