"""The imaging platform under test: the shipped DICOM, DICOMweb, XDS-I, XDS and HL7 routes in one engine.

The engine runs in a thread of its own (as in ``tests/xds_e2e``), so tests are
plain synchronous code driving real peers: dcmtk's SCUs, a dcmtk ``storescp``
as a C-MOVE destination and Orthanc as the hospital PACS. Its listeners get
free ports through the variables the route files read (``ESB_DICOM_PORT``,
``ESB_DICOM_ONDEMAND_PORT``, ``ESB_HTTP_PORT``, ``ESB_MLLP_PORT``); studies
complete after one quiet second (``ESB_DICOM_STUDY_COMPLETE_AFTER=1s``, the
dicom-studies timer ticking every second). The DICOM config names Orthanc and
the storescp as remote AEs.

The route files are copied as shipped, with one deployment choice: the
on-demand intake accepts only the hospital's AE title (``calling_aes``, the
option its comment recommends), which is what the bad-calling-AE test hits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from esb.exchange import Exchange
from esb.runtime.engine import Engine
from esb.settings import load_settings
from profiles.dicom.archive import Archive
from profiles.empi.config import load_empi_config
from tests.adapters.dicom.support import elements
from tests.dicom_support import dcmtk, require_dcmtk
from tests.orthanc_support import Orthanc, free_port
from tests.xds_e2e.harness import MllpClient, RunningEngine, segment

ROOT = Path(__file__).resolve().parents[2]
ROUTES = (
    "dicom-in", "dicom-ondemand", "dicomweb", "dicom-studies", "dicom-commitment", "xdsi", "xds-registry",
    "xds-repository", "hl7-in",
)  # fmt: skip
#: the AE titles of the peers, as config/dicom.yaml names them
STORESCP_AE = "STORESCP"
MODALITY_AE = "MODALITY1"
#: the HIS's patient domain (ITI-8 feeds) and the Issuer of Patient ID its images carry
HIS_NAMESPACE, HIS_OID = "HIS1", "1.2.3.1"
HIS = f"{HIS_NAMESPACE}&{HIS_OID}&ISO"
MASTER = load_empi_config().master_domain
WAIT = 20.0

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll ``probe`` until it returns something (not None, not False)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


def wait_listening(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    def probe() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the peer exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        return False

    wait_for(f"a listener on port {port}", probe, 10.0)


class StoreScp:
    """dcmtk ``storescp`` as the C-MOVE destination STORESCP: every file it receives lands in ``directory``."""

    def __init__(self, directory: Path) -> None:
        require_dcmtk()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._log = (directory.parent / "storescp.log").open("wb")
        env = {**os.environ, "TCP_NODELAY": "1"}
        command = ["storescp", "+xa", "-aet", STORESCP_AE, "-od", str(directory), str(self.port)]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        wait_listening(self.port, self.process)

    def received(self, study_uid: str) -> dict[str, Path]:
        """{SOP Instance UID: file} of what arrived for ``study_uid``."""
        found = {}
        for path in self.directory.iterdir():
            ds = dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SOPInstanceUID"])
            if ds.StudyInstanceUID == study_uid:
                found[str(ds.SOPInstanceUID)] = path
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


@dataclasses.dataclass(frozen=True)
class Ports:
    http: int
    mllp: int
    dicom: int
    ondemand: int


class Platform(RunningEngine):
    """The running engine, its ports and its services."""

    def __init__(self, engine: Engine, ports: Ports, orthanc: Orthanc, storescp: StoreScp) -> None:
        super().__init__(engine)
        self.ports = ports
        self.orthanc = orthanc
        self.storescp = storescp

    @property
    def ae_title(self) -> str:
        return self.engine.settings.dicom_ae_title

    @property
    def dicomweb(self) -> str:
        return f"{self.base_url}/dicomweb"

    @property
    def xdsi_url(self) -> str:
        return f"{self.base_url}/xdsi/imaging-source"

    @property
    def archive(self) -> Archive:
        archive: Archive = self.service("dicom-archive").archive
        return archive

    def service(self, name: str) -> Any:
        return self.engine.context.service(name)

    def call(self, service: str, operation: str, exchange: Exchange) -> Exchange | None:
        """``service:NAME/OP`` called as a route step would, on the engine's loop."""
        result: Exchange | None = self.run(self.service(service).call(operation, exchange), timeout=120.0)
        return result

    def study_status(self, study_uid: str) -> str:
        info = self.archive.study(study_uid)
        return info.status if info is not None else ""

    def wait_archived(self, study_uid: str, instances: int) -> None:
        """Until the study holds ``instances`` and its KOS is registered (status ``archived``)."""

        def probe() -> bool:
            info = self.archive.study(study_uid)
            return info is not None and info.num_instances == instances and info.status == "archived"

        wait_for(f"study {study_uid} archived with {instances} instances", probe)

    def scu(
        self, tool: str, *options: str, files: Sequence[Path] = (), port: int | None = None, called: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A dcmtk SCU against the engine (the dicom-in port unless told), finished; never raises on status."""
        target = ("127.0.0.1", str(port or self.ports.dicom))
        return dcmtk(tool, "-aec", called or self.ae_title, *options, *target, *files)

    def register_patient(self, local_id: str, name: str = "") -> str:
        """ITI-8 ADT^A01 of ``local_id`` in the HIS domain, then ITI-9: the patient's master ID as an XDS CX.

        Names and birth dates differ per patient unless given: the EMPI links
        records that look alike to one person, and tests keep their patients apart.
        """
        name = name or f"Family{local_id}^Given{local_id}"
        seed = int(hashlib.sha1(local_id.encode()).hexdigest(), 16)
        birth = f"19{20 + seed % 79}{1 + seed // 79 % 12:02d}{1 + seed // 948 % 28:02d}"
        with MllpClient(self.mllp_port) as mllp:
            control = uuid.uuid4().hex[:12]
            pid = f"PID|1||{local_id}^^^{HIS}^MR||{name}||{birth}|M"
            stamp = "20261129080000"
            adt = "\r".join([msh("ADT^A01^ADT_A01", control, stamp), f"EVN|A01|{stamp}", pid])
            ack = mllp.call(adt)
            assert segment(ack, "MSA")[1:3] == ["AA", control], ack
            control = uuid.uuid4().hex[:12]
            master = f"{MASTER.namespace}&{MASTER.universal_id}&{MASTER.universal_id_type}"
            query = f"QPD|IHE PIX Query|{control}|{local_id}^^^{HIS}|^^^{master}"
            rsp = mllp.call("\r".join([msh("QBP^Q23^QBP_Q21", control, stamp), query, "RCP|I"]))
        assert segment(rsp, "MSA")[1] == "AA" and segment(rsp, "QAK")[2] == "OK", rsp
        [value] = [rep.split("^")[0] for rep in segment(rsp, "PID")[3].split("~") if rep.split("^")[3] == master]
        return f"{value}^^^&{MASTER.universal_id}&ISO"


def msh(kind: str, control: str, stamp: str) -> str:
    return f"MSH|^~\\&|HIS1|HOSP|EMPI|REGION|{stamp}||{kind}|{control}|P|2.5|||||||UNICODE UTF-8"


def dicom_config(path: Path, ports: Ports, orthanc: Orthanc, storescp: StoreScp) -> Path:
    """config/dicom.yaml for the test: Orthanc (DIMSE and DICOMweb) and the storescp as remote AEs."""
    remotes = {
        orthanc.ae_title: {"host": "127.0.0.1", "port": orthanc.dicom_port, "dicomweb": orthanc.dicomweb_url},
        STORESCP_AE: {"host": "127.0.0.1", "port": storescp.port},
    }
    text = "\n".join(
        [
            f"remote_aes: {json.dumps(remotes)}",
            "study_complete_after: ${ESB_DICOM_STUDY_COMPLETE_AFTER:-60s}",
            f"xdsi: {{enabled: true, wado_base: 'http://127.0.0.1:{ports.http}/dicomweb'}}",
            "cache_expiry: 1h",
            "",
        ]
    )
    path.write_text(text, encoding="utf-8")
    return path


def copy_routes(directory: Path, hospital_ae: str) -> Path:
    """The shipped routes; the on-demand intake restricted to the hospital's AE title."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ROUTES:
        text = (ROOT / "routes" / f"{name}.yaml").read_text(encoding="utf-8")
        if name == "dicom-ondemand":
            if "?ae_title=" not in text:
                raise RuntimeError("routes/dicom-ondemand.yaml changed: no '?ae_title=' to add calling_aes to")
            text = text.replace("?ae_title=", f"?calling_aes={hospital_ae}&ae_title=", 1)
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


@contextlib.contextmanager
def platform(directory: Path, db_url: str, orthanc: Orthanc, storescp: StoreScp) -> Iterator[Platform]:
    """The engine with the shipped routes on free ports; the DICOM port is the one Orthanc C-MOVEs to."""
    ports = Ports(http=free_port(), mllp=free_port(), dicom=orthanc.peer_port, ondemand=free_port())
    routes = copy_routes(directory / "routes", orthanc.ae_title)
    config = dicom_config(directory / "dicom.yaml", ports, orthanc, storescp)
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith(("ESB_XDS_", "ESB_DICOM_"))]:
            env.delenv(name)
        variables = {
            "ESB_LISTEN_HOST": "127.0.0.1",
            "ESB_HTTP_PORT": str(ports.http),
            "ESB_MLLP_PORT": str(ports.mllp),
            "ESB_DICOM_PORT": str(ports.dicom),
            "ESB_DICOM_ONDEMAND_PORT": str(ports.ondemand),
            "ESB_DICOM_AE_TITLE": orthanc.peer_ae_title,
            "ESB_DICOM_STUDY_COMPLETE_AFTER": "1s",
            "ESB_DICOM_COMPLETE_EVERY": "1s",
            "ESB_DICOM_COMMITMENT_EVERY": "500ms",
            "ESB_DICOM_CONFIG": str(config),
            "ESB_EMPI_LISTENERS": str(directory / "no-listeners.yaml"),
        }
        for name, value in variables.items():
            env.setenv(name, value)
        settings = dataclasses.replace(
            load_settings(),
            data_dir=directory / "var",
            db_url=db_url,
            route_paths=(routes,),
            delivery_poll=0.05,
            shutdown_timeout=5.0,
            node_id=f"dicom-e2e-{uuid.uuid4().hex[:8]}",
        )
        assert (settings.http_port, settings.dicom_port) == (ports.http, ports.dicom)
        running = Platform(Engine(settings), ports, orthanc, storescp)
        try:
            running.start()
            yield running
        finally:
            running.stop()


def same_instance(got: Path | bytes | Dataset, want: Path) -> None:
    """The data sets are equal, element by element, pixel data bytes included.

    The file meta may differ, and so may group lengths and trailing padding, which
    dcmtk drops when it writes what it received.
    """
    import io

    received = got if isinstance(got, Dataset) else dcmread(io.BytesIO(got) if isinstance(got, bytes) else got)
    sent = dcmread(want)
    assert received.SOPInstanceUID == sent.SOPInstanceUID
    assert received.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
    assert received.PixelData == sent.PixelData
    assert elements(received) == elements(sent)
