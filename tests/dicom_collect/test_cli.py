"""``esb dicom collect`` and ``esb dicom jobs`` against a real Orthanc, in-process with click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner, Result

from esb.cli.common import main_group
from esb.storage import LocalDiskStore
from profiles.dicom.archive import Archive
from profiles.dicom.config import DicomConfig
from tests.dicom_collect.conftest import MASTER_OID, upload_study
from tests.dicom_support import identifier
from tests.orthanc_support import Orthanc


def esb(db_url: str, tmp_path: Path, orthanc: Orthanc, *args: str) -> Result:
    config = tmp_path / "dicom.yaml"
    remote = f"{{host: 127.0.0.1, port: {orthanc.dicom_port}, dicomweb: '{orthanc.dicomweb_url}'}}"
    config.write_text(f"remote_aes:\n  ORTHANC: {remote}\n", encoding="utf-8")
    env = {
        "ESB_DB_URL": db_url, "ESB_DATA_DIR": str(tmp_path / "var"), "ESB_ROUTES": str(tmp_path / "routes"),
        "ESB_DICOM_CONFIG": str(config), "ESB_DICOM_AE_TITLE": "ESBCLI", "ESB_NODE_ID": "cli-test", "ESB_CONFIG": None,
    }  # fmt: skip
    return CliRunner(env=env).invoke(main_group, list(args), prog_name="esb", catch_exceptions=False)


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_collect_by_cget_and_list_jobs(
    orthanc: Orthanc, engine: sa.Engine, db_url: str, year: str, tmp_path: Path
) -> None:
    studies = [upload_study(orthanc, tmp_path, f"{year}080{day}", (2,)) for day in (1, 2)]
    upload_study(orthanc, tmp_path, f"{year}0803", (1,))
    report = as_json(esb(db_url, tmp_path, orthanc, "--json", "dicom", "collect", "--from", "ORTHANC",
                         "--since", f"{year}-08-01", "--until", f"{year}0802", "--method", "get"))  # fmt: skip
    assert {k: report[k] for k in ("source", "method", "since", "until", "status", "found", "retrieved", "failed",
                                   "instances", "resumed")} == {  # fmt: skip
        "source": "ORTHANC", "method": "get", "since": f"{year}0801", "until": f"{year}0802", "status": "done",
        "found": 2, "retrieved": 2, "failed": 0, "instances": 4, "resumed": False,
    }  # fmt: skip
    assert report["bytes"] > 4 * 39000
    archive = Archive(engine, LocalDiskStore(tmp_path / "var" / "dicom"), DicomConfig(), MASTER_OID)
    for study in studies:
        refs = archive.select("STUDY", identifier("STUDY", StudyInstanceUID=study.uid))
        assert {r.sop_instance_uid for r in refs} == study.sop_uids
        assert all(r.storage_key is not None for r in refs)
    jobs = as_json(esb(db_url, tmp_path, orthanc, "--json", "dicom", "jobs"))
    assert [(j["job_id"], j["status"], j["instances"]) for j in jobs] == [(report["job_id"], "done", 4)]
    table = esb(db_url, tmp_path, orthanc, "dicom", "jobs")
    assert table.exit_code == 0 and report["job_id"] in table.output and "ORTHANC" in table.output


def test_collect_usage_errors(orthanc: Orthanc, engine: sa.Engine, db_url: str, tmp_path: Path) -> None:
    unknown = esb(db_url, tmp_path, orthanc, "dicom", "collect", "--from", "PACS9", "--since", "2020-01-01")
    assert unknown.exit_code == 2 and "unknown remote AE 'PACS9' (known: ORTHANC)" in unknown.output
    bad_date = esb(db_url, tmp_path, orthanc, "dicom", "collect", "--from", "ORTHANC", "--since", "yesterday")
    assert bad_date.exit_code == 2 and "is not a date" in bad_date.output
    backwards = esb(db_url, tmp_path, orthanc, "dicom", "collect", "--from", "ORTHANC", "--since", "2020-01-02",
                    "--until", "2020-01-01")  # fmt: skip
    assert backwards.exit_code == 2 and "ends (20200101) before it starts (20200102)" in backwards.output
