"""What the DICOM benchmarks run: images, dcmtk's storescu and storescp, Orthanc, the engine as child processes.

Nothing here measures; :mod:`bench.dicom` does. Every peer listens on a free
port and every client talks to 127.0.0.1 only; dcmtk and Orthanc run with
``TCP_NODELAY=1`` (without it each C-STORE waits ~90 ms on a delayed ACK,
PEERS.md). The engine runs as ``esb run`` would start it, configured by
``ESB_*`` variables, so the benchmark's own process never shares its GIL.
Images are made from pydicom-data's 512 x 512 CT (``693_UNCR.dcm``, 526 KB)
with fresh UIDs, as the tests make theirs (the benchmark does not import tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import requests
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
LARGE_CT = "693_UNCR.dcm"
ORTHANC_BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
START_TIMEOUT = 60.0
NODELAY = {"TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[Any] | None, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:g}s")


def stop_process(process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it does not go in time (only the process we started)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- images ------------------------------------------------------------------------------


def make_images(
    directory: Path,
    count: int,
    *,
    patient_id: str = "BENCH0001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    source: str = LARGE_CT,
) -> list[Path]:
    """``count`` instances of one CT series (fresh SOP Instance UIDs) as Part 10 files in ``directory``."""
    found = get_testdata_file(source, download=False)
    if found is None:
        raise RuntimeError(f"{source} is not installed (pip install pydicom-data); nothing is downloaded")
    directory.mkdir(parents=True, exist_ok=True)
    ds = dcmread(str(found))
    ds.PatientID, ds.IssuerOfPatientID, ds.PatientName = patient_id, "BENCH", "Bench^Patient"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.AccessionNumber, ds.StudyDate = "", "20261129"
    paths = []
    for number in range(1, count + 1):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = number
        path = directory / f"{number:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def total_bytes(paths: Sequence[Path]) -> int:
    return sum(path.stat().st_size for path in paths)


# -- storescu --------------------------------------------------------------------------


def storescu(port: int, called_ae: str, paths: Sequence[Path], associations: int, timeout: float = 900.0) -> float:
    """Send ``paths`` with ``associations`` storescu processes at once (contiguous shares); seconds until all ended.

    storescu stops at the first C-STORE that is not a success and exits
    non-zero then, which fails the measurement (the caller also counts what
    the receiver kept).
    """
    if shutil.which("storescu") is None:
        raise RuntimeError("dcmtk's storescu is not installed (apt-get install dcmtk)")
    share = -(-len(paths) // associations)
    chunks = [paths[i : i + share] for i in range(0, len(paths), share)]
    env = {**os.environ, **NODELAY}
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            ["storescu", "-R", "-aet", f"BENCH{index}", "-aec", called_ae, "127.0.0.1", str(port), *map(str, chunk)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        for index, chunk in enumerate(chunks, 1)
    ]
    failures = []
    for process in processes:
        try:
            _, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        if process.returncode != 0:
            failures.append(f"exit {process.returncode}: {err.decode(errors='replace').strip()[-300:]}")
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"storescu to port {port} failed: {failures[0]}")
    return seconds


# -- dcmtk storescp ------------------------------------------------------------------------


class Storescp:
    """dcmtk's storescp writing into a temp dir; ``fork``: one process per association."""

    def __init__(self, directory: Path, *, fork: bool) -> None:
        if shutil.which("storescp") is None:
            raise RuntimeError("dcmtk's storescp is not installed (apt-get install dcmtk)")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.ae_title = "STORESCP"
        command = ["storescp", *(["--fork"] if fork else []), "-aet", self.ae_title, "-od", str(directory)]
        self.process = subprocess.Popen(
            [*command, str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **NODELAY},
        )  # fmt: skip
        try:
            wait_listening(self.port, self.process, "storescp")
        except BaseException:
            self.stop()
            raise

    def count(self) -> int:
        return sum(1 for path in self.directory.iterdir() if path.is_file())

    def stop(self) -> None:
        stop_process(self.process)


# -- Orthanc ------------------------------------------------------------------------------


def orthanc_binary() -> str | None:
    wanted = os.environ.get("ESB_TEST_ORTHANC")
    candidates = [wanted] if wanted else [shutil.which("Orthanc") or "", *ORTHANC_BINARIES]
    return next((c for c in candidates if c and Path(c).exists()), None)


class Orthanc:
    """Orthanc 1.10 from a config in a temp dir (storage and index there too), with its DICOMweb plugin."""

    def __init__(self, directory: Path) -> None:
        binary = orthanc_binary()
        if binary is None:
            raise RuntimeError("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.http_port, self.port = free_port(), free_port()
        self.ae_title = "ORTHANC"
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb_url = f"{self.http_url}/dicom-web"
        config = {
            "Name": "esb-bench", "HttpPort": self.http_port, "DicomPort": self.port, "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True, "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowFind": True,
            "StorageDirectory": str(directory / "storage"), "IndexDirectory": str(directory / "index"),
            "StorageAccessOnFind": "Never", "SaveJobs": False,
            "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado"},
        }  # fmt: skip
        path = directory / "orthanc.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        self._log: IO[bytes] = (directory / "orthanc.log").open("wb")
        self.process = subprocess.Popen(
            [binary, str(path)], stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **NODELAY}
        )
        self.session = requests.Session()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    @property
    def has_dicomweb(self) -> bool:
        return DICOMWEB_PLUGIN.exists()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}, see {self.directory}/orthanc.log")
            with contextlib.suppress(requests.RequestException):
                if self.session.get(f"{self.http_url}/system", timeout=1).ok:
                    wait_listening(self.port, self.process, "Orthanc")
                    return
            time.sleep(0.05)
        raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT:g}s")

    def count(self) -> int:
        answer = self.session.get(f"{self.http_url}/statistics", timeout=30)
        answer.raise_for_status()
        return int(answer.json()["CountInstances"])

    def stop(self) -> None:
        """Killed: its storage goes with the temp dir, and a graceful stop takes seconds."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.session.close()
        self._log.close()


# -- the engine in child processes ----------------------------------------------------------


class EngineProcess:
    """One engine node, started like ``esb run`` (``python -m bench.dicom serve``) from ``ESB_*`` variables.

    It prints its ports once started, answers ``stats`` on stdin with the
    C-STOREs its routes took, and stops when stdin is closed.
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.dicom", "serve"], cwd=str(ROOT), env={**os.environ, **env},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        line = self._read_line()
        ports = json.loads(line)
        self.http_port, self.dicom_port = int(ports["http_port"]), int(ports["dicom_port"])

    def _read_line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise RuntimeError(f"the engine exited with {self.process.returncode}, see {self._log.name}")
        return line.decode()

    def stats(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(b"stats\n")
        self.process.stdin.flush()
        result: dict[str, Any] = json.loads(self._read_line())
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def engine_env(db_url: str, scratch: Path, routes: Path, *, node: str, dicom_port: int) -> dict[str, str]:
    """The variables of one node; nodes of one benchmark share the database and the archive's storage."""
    return {
        "ESB_DB_URL": db_url, "ESB_DATA_DIR": str(scratch / f"var-{node}"), "ESB_ROUTES": str(routes),
        "ESB_NODE_ID": node, "ESB_LOG_LEVEL": "warning", "ESB_LISTEN_HOST": "127.0.0.1", "ESB_HTTP_PORT": "0",
        "ESB_DICOM_PORT": str(dicom_port), "ESB_DICOM_STORAGE": str(scratch / "dicom"), "ESB_DICOM_XDSI": "false",
        "ESB_SHUTDOWN_TIMEOUT": "30s", "ESB_DB_AUTO_UPGRADE": "false",
    }  # fmt: skip


def copy_routes(directory: Path, names: Sequence[str], *, reuse_port: bool = False) -> Path:
    """The shipped route files, as they are; ``reuse_port`` adds ``reuse_port=true`` to the DICOM listener."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        text = (ROOT / "routes" / name).read_text(encoding="utf-8")
        if reuse_port and name == "dicom-in.yaml":
            if "?ae_title=" not in text:
                raise RuntimeError("routes/dicom-in.yaml has changed: no '?ae_title=' to add reuse_port to")
            text = text.replace("?ae_title=", "?reuse_port=true&ae_title=", 1)
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@contextlib.contextmanager
def temp_dir(scratch: Path, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
