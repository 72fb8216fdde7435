"""Modality Worklist: C-FIND latency over ``n`` scheduled procedure steps (docs/worklist.md).

``n`` steps over 30 days and 30 stations (CT1..CT10, MR1..MR10, US1..US10),
written straight into the worklist table as :class:`Worklist` writes them,
then Modality Worklist C-FINDs over one kept-open association to an engine in
a child process (``routes/dicom-in.yaml``), each kind ``per_kind`` times: what
a modality asks every few minutes (its AE title and today), by Patient ID, by
Accession Number, and by a Patient's Name prefix in pinyin. Latency runs from
the request to the final response; the mean number of matches is a figure too.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from bench.dicom_peers import EngineProcess, copy_routes, engine_env, free_port
from bench.runner import Figure, Run, percentiles, rate, register
from esb.journal import database
from profiles.worklist.orders import Order, Patient, Step, study_uid_for
from profiles.worklist.schema import SCHEDULED, items
from profiles.worklist.store import row_values

MWL_FIND = "1.2.840.10008.5.1.4.31"
STATIONS = [f"{m}{i}" for m in ("CT", "MR", "US") for i in range(1, 11)]
FAMILIES = ["WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "HUANG", "ZHAO", "WU", "ZHOU", "XU", "SUN", "MA", "ZHU"]
DAYS = 30
START = dt.date(2026, 12, 1)


def _order(n: int, rng: random.Random) -> Order:
    station = rng.choice(STATIONS)
    day = START + dt.timedelta(days=rng.randrange(DAYS))
    accession = f"A{n:07d}"
    family, given = rng.choice(FAMILIES), f"G{rng.randrange(500):03d}"
    step = Step(
        accession_number=accession, sps_id=f"S{n:07d}", requested_procedure_id=f"R{n:07d}",
        study_uid=study_uid_for(accession), modality=station[:2], station_ae=station,
        start_date=day.strftime("%Y%m%d"), start_time=f"{8 + rng.randrange(10):02d}{rng.randrange(60):02d}00",
        description="Scheduled exam", procedure_code=("P1", "L", "Scheduled exam"),
    )  # fmt: skip
    patient = Patient(f"P{n // 2:07d}", "HIS1", f"{family}^{given}", "19800101", "F")
    return Order("NW", "", f"PL{n}", f"FL{n}", patient, "", (step,))


def fill(db: sa.Engine, n: int) -> list[Order]:
    rng = random.Random(7)
    orders = [_order(k, rng) for k in range(n)]
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with db.begin() as conn:
        for start in range(0, n, 1000):
            chunk = orders[start : start + 1000]
            rows = [row_values(o, o.steps[0], SCHEDULED, now) | {"created_at": now} for o in chunk]
            conn.execute(sa.insert(items), rows)
    return orders


@register("worklist-find", n=20_000, quick_n=300, summary="Modality Worklist C-FIND latency over N scheduled steps")
def worklist_bench(run: Run) -> Iterator[Figure]:
    per_kind = 20 if run.quick else 300
    db = database.make_engine(run.db.url)
    try:
        database.upgrade(db)
        started = time.perf_counter()
        orders = fill(db, run.n)
        yield Figure("worklist_fill_rate", rate(run.n, time.perf_counter() - started), "steps/s")
    finally:
        db.dispose()
    routes = copy_routes(run.db.scratch / "routes", ["dicom-in.yaml"])
    env = engine_env(run.db.url, run.db.scratch, routes, node="mwl", dicom_port=free_port())
    node = EngineProcess(env, run.db.scratch / "engine.log")
    try:
        yield from _find_all(node.dicom_port, orders, per_kind)
    finally:
        node.stop()


def _queries(orders: list[Order], per_kind: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(11)
    picked = [rng.choice(orders) for _ in range(per_kind)]
    return {
        "station_day": [
            {"ScheduledStationAETitle": o.steps[0].station_ae, "ScheduledProcedureStepStartDate": o.steps[0].start_date}
            for o in picked
        ],  # fmt: skip
        "patient_id": [{"PatientID": o.patient.patient_id} for o in picked],
        "accession": [{"AccessionNumber": o.steps[0].accession_number} for o in picked],
        "name_prefix": [{"PatientName": o.patient.name.split("^")[0] + "^G00*"} for o in picked],
    }


def _find_all(port: int, orders: list[Order], per_kind: int) -> Iterator[Figure]:
    from pydicom.dataset import Dataset
    from pynetdicom import AE as ApplicationEntity
    from pynetdicom import evt

    from bench.dicom import _client_socket  # TCP_NODELAY and a fast-polling client, as for dicom-find

    ae = ApplicationEntity(ae_title="BENCHMWL")
    ae.add_requested_context(MWL_FIND)
    ae.dimse_timeout, ae.acse_timeout, ae.network_timeout = 10, 30, 60
    assoc = ae.associate("127.0.0.1", port, ae_title="ESB", evt_handlers=[(evt.EVT_CONN_OPEN, _client_socket)])
    if not assoc.is_established:
        raise RuntimeError(f"worklist-find: no association with the engine on port {port}")

    def identifier(keys: dict[str, Any]) -> Dataset:
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        for keyword in ("PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID"):
            setattr(ds, keyword, keys.get(keyword, ""))
        step = Dataset()
        for keyword in ("ScheduledStationAETitle", "ScheduledProcedureStepStartDate", "Modality",
                        "ScheduledProcedureStepStartTime", "ScheduledProcedureStepID"):  # fmt: skip
            setattr(step, keyword, keys.get(keyword, ""))
        ds.ScheduledProcedureStepSequence = [step]
        return ds

    try:
        for kind, requests in _queries(orders, per_kind).items():
            latencies: list[float] = []
            matches: list[int] = []
            for keys in requests:
                started = time.perf_counter()
                found, final = 0, -1
                for status, _ in assoc.send_c_find(identifier(keys), MWL_FIND):
                    code = int(getattr(status, "Status", -1)) if status else -1
                    if code in (0xFF00, 0xFF01):
                        found += 1
                    else:
                        final = code
                latencies.append(time.perf_counter() - started)
                if final != 0x0000:
                    raise RuntimeError(f"worklist-find: a {kind} query ended with status {final:#06x}")
                matches.append(found)
            yield from percentiles(latencies, f"find_{kind}")
            yield Figure(f"find_{kind}_matches_mean", round(statistics.fmean(matches), 2), "items")
    finally:
        assoc.release()
