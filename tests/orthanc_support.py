"""Orthanc 1.10 as a real remote PACS on 127.0.0.1: started from a temp dir on free ports, stopped at teardown.

It is the hospital archive the active collection job and on-demand retrieval
talk to (issue 5, "Peers"): DIMSE (C-FIND/C-MOVE/C-GET) on ``dicom_port`` and
DICOMweb on ``dicomweb_url``. Orthanc listens on every interface (1.10 has no
bind option) with ``RemoteAccessAllowed`` false; clients only ever use 127.0.0.1.
It runs with ``TCP_NODELAY=1`` (PEERS.md: otherwise each C-STORE waits ~90 ms).

``ESB_TEST_ORTHANC`` (the binary's path; ``.ci/run`` sets it) makes a missing
Orthanc a failure; unset, tests that need it are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
AE_TITLE = "ORTHANC"
#: the AE the ``orthanc`` fixture lets Orthanc C-MOVE to (at ``peer_port``): the engine's default title
PEER_AE_TITLE = "ESB"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def orthanc_binary() -> str | None:
    """The Orthanc to run: ``ESB_TEST_ORTHANC`` or the one on PATH (Debian puts it in /usr/sbin)."""
    wanted = os.environ.get("ESB_TEST_ORTHANC")
    if wanted:
        return wanted if Path(wanted).exists() else None
    return shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin")


def require_orthanc() -> str:
    """The binary, or a skip (a failure when ESB_TEST_ORTHANC says Orthanc must be there)."""
    binary = orthanc_binary()
    if binary and DICOMWEB_PLUGIN.exists():
        return binary
    missing = f"Orthanc ({os.environ.get('ESB_TEST_ORTHANC') or 'Orthanc'}) or {DICOMWEB_PLUGIN}"
    if os.environ.get("ESB_TEST_ORTHANC"):
        pytest.fail(f"ESB_TEST_ORTHANC is set but {missing} is missing")
    pytest.skip(f"{missing} is not installed (apt-get install orthanc orthanc-dicomweb)")


class Orthanc:
    """One running Orthanc; ``peers`` are the AEs it may C-MOVE to (``{name: (ae_title, port)}``)."""

    def __init__(self, binary: str, directory: Path, peers: dict[str, tuple[str, int]] | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.ae_title = AE_TITLE
        #: the AE Orthanc may C-MOVE to (set by the fixture)
        self.peer_ae_title, self.peer_port = "", 0
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb_url = f"{self.http_url}/dicom-web"
        config = self._config(peers or {})
        path = directory / "orthanc.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self._log = (directory / "orthanc.log").open("wb")
        env = {**os.environ, "TCP_NODELAY": "1"}
        self.process = subprocess.Popen([binary, str(path)], stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.session = requests.Session()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _config(self, peers: dict[str, tuple[str, int]]) -> dict[str, Any]:
        return {
            "Name": "esb-test-pacs",
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {name: [ae, "127.0.0.1", port] for name, (ae, port) in peers.items()},
            "StorageDirectory": str(self.directory / "storage"),
            "IndexDirectory": str(self.directory / "index"),
            "StorageAccessOnFind": "Never",
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado"},
            "HttpTimeout": 30,
            "DicomScuTimeout": 30,
            "SaveJobs": False,
            "ConcurrentJobs": 2,
        }

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if self.session.get(f"{self.http_url}/system", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Orthanc did not answer on {self.http_url} within {START_TIMEOUT:g}s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        path = self.directory / "orthanc.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def upload(self, paths: Iterable[Path]) -> list[str]:
        """POST each Part 10 file to /instances; returns Orthanc's instance IDs."""
        ids = []
        for path in paths:
            answer = self.session.post(f"{self.http_url}/instances", data=Path(path).read_bytes(), timeout=30)
            answer.raise_for_status()
            ids.append(str(answer.json()["ID"]))
        return ids

    def studies(self) -> list[str]:
        """Study Instance UIDs Orthanc holds."""
        answer = self.session.get(f"{self.http_url}/studies", params={"expand": ""}, timeout=30)
        answer.raise_for_status()
        return sorted(str(study["MainDicomTags"]["StudyInstanceUID"]) for study in answer.json())

    def add_modality(self, name: str, ae_title: str, port: int) -> None:
        """Let Orthanc C-MOVE to ``ae_title`` at 127.0.0.1:``port`` (known only once our SCP listens)."""
        body: dict[str, str | int] = {"AET": ae_title, "Host": "127.0.0.1", "Port": port}
        self.session.put(f"{self.http_url}/modalities/{name}", json=body, timeout=10).raise_for_status()

    def delete_all(self) -> None:
        """Empty the PACS between tests sharing one Orthanc."""
        for study in self.session.get(f"{self.http_url}/studies", timeout=30).json():
            self.session.delete(f"{self.http_url}/studies/{study}", timeout=30).raise_for_status()

    def stop(self) -> None:
        """Kill it: its storage and index live in a temp dir that goes next, and a graceful stop takes ~2 s."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.session.close()
        self._log.close()


@pytest.fixture(scope="module")
def orthanc() -> Iterator[Orthanc]:
    """One Orthanc per test module (starts in well under a second); tests use fresh study UIDs.

    Its ``DicomModalities`` name ``PEER_AE_TITLE`` at 127.0.0.1:``peer_port``
    (a free port): a Storage SCP listening there receives C-MOVEs.
    """
    binary = require_orthanc()
    with tempfile.TemporaryDirectory(prefix="esb-orthanc-") as directory:
        peer_port = free_port()
        peer = Orthanc(binary, Path(directory), {"esb": (PEER_AE_TITLE, peer_port)})
        peer.peer_ae_title, peer.peer_port = PEER_AE_TITLE, peer_port
        try:
            yield peer
        finally:
            peer.stop()
