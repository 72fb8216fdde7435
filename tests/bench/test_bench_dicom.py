"""``python -m bench dicom-ingest dicom-find dicomweb-frames --quick``: engine, dcmtk, Orthanc, figures in shape.

Speeds are not checked (a shared test machine says nothing about them). The
benchmarks check themselves that every image sent is held by its receiver and
that every query and frame was answered; here the figures must all be there,
positive, in their units. dcmtk and Orthanc are real peers: without them the
test is skipped, unless ``ESB_TEST_DCMTK`` / ``ESB_TEST_ORTHANC`` say they must
be there.
"""

from __future__ import annotations

import json
from typing import Any

from tests.bench.test_bench_smoke import run_bench
from tests.dicom_support import require_dcmtk
from tests.orthanc_support import require_orthanc

RECEIVERS = ("esb_1assoc", "esb_4assoc", "esb_2proc_4assoc", "orthanc_1assoc", "orthanc_4assoc", "storescp_1assoc",
             "storescp_4assoc")  # fmt: skip
FIND_KINDS = ("echo", "patient_id", "accession", "date_modality", "name_prefix")


def test_dicom_benchmarks_quick_print_every_figure() -> None:
    require_dcmtk()
    require_orthanc()
    done = run_bench("dicom-ingest", "dicom-find", "dicomweb-frames", "--quick", "--db", "sqlite")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert all("skipped" not in line for line in lines), [line for line in lines if "skipped" in line]
    by = {(line["bench"], line["metric"]): line for line in lines}

    def value(bench: str, metric: str, unit: str) -> Any:
        line = by[(bench, metric)]
        assert line["unit"] == unit and line["db"] == "sqlite", line
        return line["value"]

    assert value("dicom-ingest", "images", "images") == 8
    for receiver in RECEIVERS:
        assert value("dicom-ingest", f"{receiver}_rate", "images/s") > 0
        assert value("dicom-ingest", f"{receiver}_throughput", "MB/s") > 0
    for ratio in ("ratio_esb_orthanc_1assoc", "ratio_esb_storescp_4assoc", "ratio_esb_2proc_storescp_4assoc"):
        assert value("dicom-ingest", ratio, "x") > 0
    assert 50 <= value("dicom-ingest", "esb_2proc_busiest_node_share", "%") <= 100
    assert 1 <= value("dicom-ingest", "esb_2proc_runs", "runs") <= 3

    assert value("dicom-find", "index_fill_rate", "studies/s") > 0
    for kind in FIND_KINDS:
        p50, p99 = value("dicom-find", f"{kind}_latency_p50", "ms"), value("dicom-find", f"{kind}_latency_p99", "ms")
        assert 0 < p50 <= p99
    for kind in FIND_KINDS:
        assert value("dicom-find", f"{kind}_lost", "requests") >= 0
    assert value("dicom-find", "patient_id_matches_mean", "studies") == 2.0  # two studies per patient
    assert value("dicom-find", "accession_matches_mean", "studies") == 1.0

    for peer in ("esb", "orthanc"):
        assert value("dicomweb-frames", f"{peer}_series_metadata_median", "ms") > 0
        assert (
            0
            < value("dicomweb-frames", f"{peer}_frame_latency_p50", "ms")
            <= value("dicomweb-frames", f"{peer}_frame_latency_p95", "ms")
        )
