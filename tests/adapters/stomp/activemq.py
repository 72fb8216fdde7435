"""A real ActiveMQ 5 broker for the ``stomp:`` tests: Debian's package, started from a temp dir on a free port.

``ESB_TEST_ACTIVEMQ`` names the ActiveMQ home (``/usr/share/activemq``, which
``.ci/run`` installs); unset, the tests skip; set and missing, they fail.
The broker runs as a plain JVM from its ``bin/activemq.jar`` with a
configuration of ours (KahaDB in the temp dir, a STOMP connector on
127.0.0.1 only, no JMX), as the tests run Orthanc: Debian's init script would
switch users and write a pid file under /run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.stomp.support import Broker, free_port

ENV = "ESB_TEST_ACTIVEMQ"
CONFIG = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans
    http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
    http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="esb-test"
          dataDirectory="{data}" schedulerSupport="false">
    <persistenceAdapter><kahaDB directory="{data}/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:{port}"/>
    </transportConnectors>
  </broker>
</beans>
"""


def require_activemq() -> Path:
    home = os.environ.get(ENV, "")
    if not home:
        pytest.skip(f"{ENV} is not set (apt-get install activemq, then {ENV}=/usr/share/activemq)")
    jar = Path(home) / "bin" / "activemq.jar"
    if not jar.is_file() or shutil.which("java") is None:
        pytest.fail(f"{ENV}={home} is set but {jar} or java is missing")
    return Path(home)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start(home: Path, directory: Path, port: int) -> subprocess.Popen[bytes]:
    (directory / "conf").mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    data.mkdir(exist_ok=True)
    config = directory / "conf" / "activemq.xml"
    config.write_text(CONFIG.format(data=data, port=port), encoding="utf-8")
    command = [
        "java", "-Xms64m", "-Xmx256m", "-Djava.awt.headless=true", f"-Dactivemq.home={home}",
        f"-Dactivemq.base={directory}", f"-Dactivemq.conf={directory / 'conf'}", f"-Dactivemq.data={data}",
        f"-Djava.io.tmpdir={data}", "-jar", str(home / "bin" / "activemq.jar"), "start", f"xbean:file:{config}",
    ]  # fmt: skip
    with (directory / "activemq.log").open("wb") as log:  # the broker keeps its own copy of the descriptor
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    deadline = time.monotonic() + 60
    while not _listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = (directory / "activemq.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"ActiveMQ did not listen on 127.0.0.1:{port}:\n{tail}")
        time.sleep(0.2)
    return process


@pytest.fixture(scope="module")
def activemq() -> Iterator[Broker]:
    """One ActiveMQ per test module; queues and topics are named afresh by each test."""
    home = require_activemq()
    with tempfile.TemporaryDirectory(prefix="esb-activemq-") as directory:
        port = free_port()
        process = start(home, Path(directory), port)
        try:
            yield Broker("127.0.0.1", port, "esb", "esb")
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
