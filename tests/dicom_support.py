"""DICOM for tests: series generated from pydicom's own files (fresh UIDs), and dcmtk as a real peer.

Nothing is downloaded: the source files ship in pydicom and pydicom-data
(``download=False``). dcmtk runs with ``TCP_NODELAY=1`` (PEERS.md: without it
each C-STORE waits ~90 ms on Nagle / delayed ACK).

``ESB_TEST_DCMTK`` set (``.ci/run`` sets it) makes a missing dcmtk a failure;
unset, tests that need it are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

#: small CT (128x128, 39 KB) and the 512x512 CT of pydicom-data (526 KB)
SMALL_CT = "CT_small.dcm"
LARGE_CT = "693_UNCR.dcm"
MR = "MR_small.dcm"


def testdata(name: str) -> Path:
    found = get_testdata_file(name, download=False)
    if found is None:
        raise FileNotFoundError(f"{name} is not in pydicom's or pydicom-data's files")
    return Path(str(found))


def series(
    directory: Path,
    count: int,
    *,
    patient_id: str = "P0001",
    issuer: str = "HIS1",
    patient_name: str = "Test^Patient",
    study_uid: str | None = None,
    series_uid: str | None = None,
    accession: str = "",
    study_date: str = "20261129",
    modality: str | None = None,
    source: str = SMALL_CT,
) -> list[Path]:
    """``count`` instances of one series (fresh SOP Instance UIDs) written as Part 10 files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    template = dcmread(testdata(source))
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    paths = []
    for number in range(1, count + 1):
        ds = template.copy()
        ds.PatientID = patient_id
        ds.IssuerOfPatientID = issuer
        ds.PatientName = patient_name
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = number
        ds.AccessionNumber = accession
        ds.StudyDate = study_date
        if modality:
            ds.Modality = modality
        path = directory / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def identifier(level: str, **keys: str) -> Dataset:
    """A C-FIND / C-MOVE identifier: QueryRetrieveLevel plus the given keys (empty string: return key)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for name, value in keys.items():
        setattr(ds, name, value)
    return ds


def dcmtk_available() -> bool:
    return shutil.which("storescu") is not None


def require_dcmtk() -> None:
    """Skip without dcmtk, unless ESB_TEST_DCMTK says it must be there."""
    if dcmtk_available():
        return
    if os.environ.get("ESB_TEST_DCMTK"):
        pytest.fail("ESB_TEST_DCMTK is set but dcmtk (storescu) is not installed")
    pytest.skip("dcmtk is not installed (apt-get install dcmtk)")


def dcmtk(
    tool: str, *args: str | Path, timeout: float = 120.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a dcmtk tool against 127.0.0.1 with TCP_NODELAY; returns the finished process (never raises on status)."""
    require_dcmtk()
    env = {**os.environ, "TCP_NODELAY": "1"}
    command: Sequence[str] = [tool, *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)
