"""DICOM (issue 5): C-STORE ingest against Orthanc and storescp, C-FIND at 100,000 studies, WADO-RS frames.

``dicom-ingest``: ``n`` CT images of 526 KB (one series, fresh UIDs) sent by
dcmtk's ``storescu`` over one association, then another ``n`` over four
parallel associations (four storescu processes, a quarter each), to three
receivers in the same run, one after the other: the engine (``routes/dicom-in.yaml``
with the real archive, in a child process, configured by ``ESB_*``
variables), Orthanc 1.10 (temp config, storage and index in a temp dir) and
dcmtk's ``storescp`` (plain for one association, ``--fork`` for four). Then
the four-association case once more against two engine processes sharing the
port (``reuse_port=true``, one database, one store). A warm-up of a few images
precedes each receiver's runs; the page cache is flushed (``sync``) before
each timed run, so no receiver pays for another's writes. Each receiver must
hold every image afterwards (counted in its index or directory).

``dicom-find``: ``n`` studies (two per patient) written straight into the
archive's tables, then study-level Study Root C-FINDs over one kept-open
association to the engine in a child process: by PatientID, by
AccessionNumber, by a two-day StudyDate range with ModalitiesInStudy=CT, and
by a PatientName prefix (``FAMILY^G*``). Latency runs from sending the
request to the final response; a C-ECHO round trip on the same association
gives the floor (pynetdicom on both sides, no query; the client's loops poll
every 0.1 ms, so its own pace adds little). The mean number of matches is a
figure too, and so are requests whose answer never came: a pynetdicom 3.0
client sometimes hands a response to the wrong one of its two threads
(pynetdicom issue #875), times out after 5 s and aborts the association; the
next request makes a new one.

``dicomweb-frames``: ``n`` instances of one series stored with storescu into
the engine (``routes/dicom-in.yaml`` and ``routes/dicomweb.yaml``), then the
series metadata (WADO-RS, five times) and frame 1 of every instance, one
request at a time over a kept-alive connection; the same against Orthanc's
DICOMweb plugin holding the same instances.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import requests
import sqlalchemy as sa

from bench.dicom_peers import (
    EngineProcess,
    Orthanc,
    Storescp,
    copy_routes,
    engine_env,
    free_port,
    make_images,
    storescu,
    temp_dir,
    total_bytes,
)
from bench.dicom_population import fill_index, queries
from bench.runner import Figure, Run, percentiles, rate, register
from esb.journal import database

MIB = 1024 * 1024
WARM_UP = 8
TWO_NODE_TRIES = 3
AE = "ESB"


def _figures_for(label: str, count: int, size: int, seconds: float) -> list[Figure]:
    return [
        Figure(f"{label}_rate", rate(count, seconds), "images/s"),
        Figure(f"{label}_throughput", round(size / MIB / seconds, 1), "MB/s"),
    ]


def _ratio(figures: dict[str, float], metric: str, ours: str, theirs: str) -> Figure:
    if ours not in figures or theirs not in figures:
        return Figure(metric, skipped=f"{ours} or {theirs} was not measured")
    return Figure(metric, round(figures[ours] / figures[theirs], 2), "x")


def _instances(db: sa.Engine) -> int:
    from profiles.dicom.schema import instances

    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(instances)).scalar_one())


def _timed(port: int, ae_title: str, paths: Sequence[Path], associations: int) -> float:
    os.sync()  # every receiver starts with nothing of another's left to write back
    return storescu(port, ae_title, paths, associations)


# -- dicom-ingest ----------------------------------------------------------------------------


@register(
    "dicom-ingest", n=300, quick_n=8, summary="C-STORE of n x 526 KB CT, 1 and 4 associations: ours, Orthanc, storescp"
)
def ingest_bench(run: Run) -> Iterator[Figure]:
    scratch = run.db.scratch
    with temp_dir(scratch, "images-") as images:
        warm = make_images(images / "warm", WARM_UP)
        sets = {k: make_images(images / k, run.n) for k in ("one", "four")}
        warm_two = make_images(images / "warm-two", WARM_UP)
        size = total_bytes(sets["one"])
        yield Figure("images", run.n, "images")
        yield Figure("image_size", round(size / run.n / 1024, 1), "KB")
        rates: dict[str, float] = {}
        runs: list[tuple[str, Any]] = [
            ("esb", lambda: _ours(run, warm, sets)),
            ("esb_2proc", lambda: _ours_two_nodes(run, warm_two, images)),
            ("orthanc", lambda: _orthanc(scratch, warm, sets)),
            ("storescp", lambda: _storescp(scratch, warm, sets)),
        ]
        for receiver, measure in runs:
            try:
                timings, extra = measure()
            except _Missing as missing:
                yield Figure(f"{receiver}_rate", skipped=str(missing))
                continue
            for label, seconds in timings.items():
                for figure in _figures_for(f"{receiver}_{label}", run.n, size, seconds):
                    yield figure
                    if figure.unit == "images/s" and figure.value is not None:
                        rates[figure.metric] = figure.value
            yield from extra
        yield _ratio(rates, "ratio_esb_orthanc_1assoc", "esb_1assoc_rate", "orthanc_1assoc_rate")
        yield _ratio(rates, "ratio_esb_storescp_4assoc", "esb_4assoc_rate", "storescp_4assoc_rate")
        yield _ratio(rates, "ratio_esb_2proc_storescp_4assoc", "esb_2proc_4assoc_rate", "storescp_4assoc_rate")


class _Missing(RuntimeError):
    """A peer that is not installed: its figures are skipped, the others still measured."""


def _upgraded(url: str) -> sa.Engine:
    db = database.make_engine(url)
    database.upgrade(db)
    return db


def _expect(count: int, wanted: int, receiver: str) -> None:
    if count != wanted:
        raise RuntimeError(f"{receiver} holds {count} images after the run, {wanted} were sent and acknowledged")


def _ours(run: Run, warm: list[Path], sets: dict[str, list[Path]]) -> tuple[dict[str, float], list[Figure]]:
    db = _upgraded(run.db.url)
    try:
        routes = copy_routes(run.db.scratch / "routes-one", ["dicom-in.yaml"])
        env = engine_env(run.db.url, run.db.scratch, routes, node="node1", dicom_port=free_port())
        node = EngineProcess(env, run.db.scratch / "engine.log")
        timings: dict[str, float] = {}
        try:
            storescu(node.dicom_port, AE, warm, 1)
            before = _instances(db)
            timings["1assoc"] = _timed(node.dicom_port, AE, sets["one"], 1)
            _expect(_instances(db) - before, run.n, "the engine (1 association)")
            timings["4assoc"] = _timed(node.dicom_port, AE, sets["four"], 4)
            _expect(_instances(db) - before, 2 * run.n, "the engine (4 associations)")
        finally:
            node.stop()
    finally:
        db.dispose()
    return timings, []


def _ours_two_nodes(run: Run, warm: list[Path], images: Path) -> tuple[dict[str, float], list[Figure]]:
    """Two engine processes on one port (SO_REUSEPORT): the kernel spreads the associations over them.

    It hashes each connection to one of them, so four associations split
    2+2 only 3 times in 8: a run that did not is sent again with fresh
    images (at most ``TWO_NODE_TRIES`` runs) and the figure is that of the
    first even split, or of the last run, with the busier node's share.
    """
    db = _upgraded(run.db.url)
    port = free_port()
    routes = copy_routes(run.db.scratch / "routes-two", ["dicom-in.yaml"], reuse_port=True)
    nodes: list[EngineProcess] = []
    try:
        for name in ("node2a", "node2b"):
            env = engine_env(run.db.url, run.db.scratch, routes, node=name, dicom_port=port)
            nodes.append(EngineProcess(env, run.db.scratch / f"engine-{name}.log"))
        storescu(port, AE, warm, 4)
        for attempt in range(1, TWO_NODE_TRIES + 1):
            batch = make_images(images / f"two-nodes-{attempt}", run.n)
            before = _instances(db)
            taken = [node.stats()["received"] for node in nodes]
            seconds = _timed(port, AE, batch, 4)
            _expect(_instances(db) - before, run.n, "two engine processes")
            shares = [node.stats()["received"] - start for node, start in zip(nodes, taken, strict=True)]
            if max(shares) <= 2 * -(-run.n // 4):  # two associations each (storescu sends n/4 rounded up on each)
                break
    finally:
        for node in nodes:
            node.stop()
        db.dispose()
    busiest = Figure("esb_2proc_busiest_node_share", round(100 * max(shares) / max(1, sum(shares)), 1), "%")
    return {"4assoc": seconds}, [busiest, Figure("esb_2proc_runs", attempt, "runs")]


_P = TypeVar("_P")


def _peer(kind: Callable[..., _P], directory: Path, **options: Any) -> _P:
    """A peer started in ``directory``; _Missing when its program is not installed (its figures are left out)."""
    try:
        return kind(directory, **options)
    except RuntimeError as exc:
        if "not installed" in str(exc):
            raise _Missing(str(exc)) from None
        raise


def _orthanc(scratch: Path, warm: list[Path], sets: dict[str, list[Path]]) -> tuple[dict[str, float], list[Figure]]:
    with temp_dir(scratch, "orthanc-") as directory:
        orthanc = _peer(Orthanc, directory)
        try:
            storescu(orthanc.port, orthanc.ae_title, warm, 1)
            timings = {"1assoc": _timed(orthanc.port, orthanc.ae_title, sets["one"], 1)}
            timings["4assoc"] = _timed(orthanc.port, orthanc.ae_title, sets["four"], 4)
            _expect(orthanc.count(), len(warm) + 2 * len(sets["one"]), "Orthanc")
        finally:
            orthanc.stop()
    return timings, []


def _storescp(scratch: Path, warm: list[Path], sets: dict[str, list[Path]]) -> tuple[dict[str, float], list[Figure]]:
    timings: dict[str, float] = {}
    for label, fork, key, associations in (("1assoc", False, "one", 1), ("4assoc", True, "four", 4)):
        with temp_dir(scratch, "storescp-") as directory:
            peer = _peer(Storescp, directory, fork=fork)
            try:
                storescu(peer.port, peer.ae_title, warm, 1)
                timings[label] = _timed(peer.port, peer.ae_title, sets[key], associations)
                _expect(peer.count(), len(warm) + len(sets[key]), f"storescp ({label})")
            finally:
                peer.stop()
    return timings, []


# -- dicom-find ----------------------------------------------------------------------------

CLIENT_POLL = 0.0001
RETURN_KEYS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate", "StudyTime",
    "AccessionNumber", "StudyID", "StudyDescription", "ReferringPhysicianName", "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
)  # fmt: skip


@register(
    "dicom-find", n=100_000, quick_n=1_000, summary="study-level C-FIND latency over one association at n studies"
)
def find_bench(run: Run) -> Iterator[Figure]:
    per_kind = 20 if run.quick else 300
    db = _upgraded(run.db.url)
    try:
        started = time.perf_counter()
        population = fill_index(db, run.n)
        yield Figure("index_fill_rate", rate(run.n, time.perf_counter() - started), "studies/s")
    finally:
        db.dispose()
    routes = copy_routes(run.db.scratch / "routes", ["dicom-in.yaml"])
    env = engine_env(run.db.url, run.db.scratch, routes, node="find", dicom_port=free_port())
    node = EngineProcess(env, run.db.scratch / "engine.log")
    try:
        yield from _find_all(node.dicom_port, queries(population, per_kind), per_kind)
    finally:
        node.stop()


def _client_socket(event: Any) -> None:
    """The benchmark's SCU: TCP_NODELAY, and its reactor polling every 0.1 ms instead of 1 ms.

    pynetdicom's reactors poll; at its default pace the client alone adds a
    millisecond or two to every round trip, which is the client's cost, not
    the server's. A dcmtk client does not poll.
    """
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    event.assoc.dul._run_loop_delay = CLIENT_POLL


def _find_all(port: int, requests_by_kind: dict[str, list[dict[str, str]]], per_kind: int) -> Iterator[Figure]:
    from pydicom.dataset import Dataset
    from pynetdicom import AE as ApplicationEntity
    from pynetdicom import evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND  # type: ignore[attr-defined]
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    ae = ApplicationEntity(ae_title="BENCHFIND")
    ae.add_requested_context(FIND)
    ae.add_requested_context(Verification)
    ae.dimse_timeout, ae.acse_timeout, ae.network_timeout = 5, 30, 60

    def associate() -> Any:
        assoc = ae.associate("127.0.0.1", port, ae_title=AE, evt_handlers=[(evt.EVT_CONN_OPEN, _client_socket)])
        if not assoc.is_established:
            raise RuntimeError(f"dicom-find: no association with the engine on port {port}")
        return assoc

    def identifier(keys: dict[str, str]) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = "STUDY"
        for keyword in RETURN_KEYS:
            setattr(ds, keyword, keys.get(keyword, ""))
        for keyword, value in keys.items():
            setattr(ds, keyword, value)
        return ds

    state = {"assoc": associate()}

    def find(keys: dict[str, str]) -> tuple[int | None, int]:
        """(final status or None when the association was lost, pending responses) of one request."""
        if not state["assoc"].is_established:  # lost on the request before: pynetdicom aborted it
            state["assoc"] = associate()
        final: int | None = None
        matches = 0
        for status, _ in state["assoc"].send_c_find(identifier(keys), FIND):
            code = int(getattr(status, "Status", -1)) if status else -1
            if code in (0xFF00, 0xFF01):
                matches += 1
            elif code >= 0:
                final = code
        return final, matches

    def echo() -> bool:
        if not state["assoc"].is_established:
            state["assoc"] = associate()
        return int(getattr(state["assoc"].send_c_echo(), "Status", -1)) == 0

    try:
        for keys in requests_by_kind["patient_id"][:10]:  # warm-up: first queries load code and plans
            find(keys)
        echoes: list[float] = []
        lost = 0
        for _ in range(per_kind):  # the floor: a C-ECHO round trip over the same association, no query
            started = time.perf_counter()
            if echo():
                echoes.append(time.perf_counter() - started)
            else:
                lost += 1
        yield from percentiles(echoes, "echo_latency")
        yield Figure("echo_lost", lost, "requests")
        for kind, batch in requests_by_kind.items():
            latencies: list[float] = []
            matches, lost, failed = 0, 0, 0
            for keys in batch:
                started = time.perf_counter()
                final, found = find(keys)
                elapsed = time.perf_counter() - started
                matches += found
                if final == 0x0000:
                    latencies.append(elapsed)
                elif final is None:  # no final response (within dimse_timeout): the association is gone
                    lost += 1
                else:
                    failed += 1
            yield from percentiles(latencies, f"{kind}_latency")
            yield Figure(f"{kind}_matches_mean", round(matches / max(1, len(batch)), 1), "studies")
            yield Figure(f"{kind}_lost", lost, "requests")
            if failed:
                raise RuntimeError(f"dicom-find: {failed} of {per_kind} {kind} queries failed")
    finally:
        if state["assoc"].is_established:
            state["assoc"].release()


# -- dicomweb-frames ---------------------------------------------------------------------------

FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
METADATA_TIMES = 5


@register(
    "dicomweb-frames", n=300, quick_n=8, summary="WADO-RS frame latency and series metadata time, n-instance series"
)
def frames_bench(run: Run) -> Iterator[Figure]:
    from pydicom import dcmread

    with temp_dir(run.db.scratch, "images-") as images:
        paths = make_images(images / "series", run.n)
        first = dcmread(paths[0], stop_before_pixels=True)
        study, series_uid = str(first.StudyInstanceUID), str(first.SeriesInstanceUID)
        sops = [str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]
        db = _upgraded(run.db.url)
        db.dispose()
        routes = copy_routes(run.db.scratch / "routes", ["dicom-in.yaml", "dicomweb.yaml"])
        env = engine_env(run.db.url, run.db.scratch, routes, node="web", dicom_port=free_port())
        node = EngineProcess(env, run.db.scratch / "engine.log")
        try:
            storescu(node.dicom_port, AE, paths, 1)
            base = f"http://127.0.0.1:{node.http_port}/dicomweb"
            yield from _dicomweb("esb", base, study, series_uid, sops)
        finally:
            node.stop()
        with temp_dir(run.db.scratch, "orthanc-") as directory:
            try:
                orthanc = Orthanc(directory)
            except RuntimeError as exc:
                if "not installed" not in str(exc):
                    raise
                yield Figure("orthanc_frame_latency_p95", skipped=str(exc))
                return
            try:
                if not orthanc.has_dicomweb:
                    yield Figure("orthanc_frame_latency_p95", skipped="Orthanc's DICOMweb plugin is not installed")
                    return
                storescu(orthanc.port, orthanc.ae_title, paths, 1)
                yield from _dicomweb("orthanc", orthanc.dicomweb_url, study, series_uid, sops)
            finally:
                orthanc.stop()


def _dicomweb(label: str, base: str, study: str, series_uid: str, sops: list[str]) -> Iterator[Figure]:
    url = f"{base}/studies/{study}/series/{series_uid}"
    with requests.Session() as session:
        times: list[float] = []
        for _ in range(METADATA_TIMES):
            started = time.perf_counter()
            answer = session.get(f"{url}/metadata", headers={"Accept": "application/dicom+json"}, timeout=120)
            times.append(time.perf_counter() - started)
            if answer.status_code != 200 or len(answer.json()) != len(sops):
                raise RuntimeError(f"dicomweb-frames: {label} series metadata answered {answer.status_code}")
        yield Figure(f"{label}_series_metadata_first", round(times[0] * 1000, 1), "ms")
        yield Figure(f"{label}_series_metadata_median", round(statistics.median(times) * 1000, 1), "ms")
        latencies: list[float] = []
        for sop in sops[:3] + sops:  # three to warm up, then every instance once (a viewer scrolling)
            started = time.perf_counter()
            answer = session.get(f"{url}/instances/{sop}/frames/1", headers={"Accept": FRAME_ACCEPT}, timeout=60)
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 200 or len(answer.content) < 512 * 512 * 2:
                raise RuntimeError(
                    f"dicomweb-frames: {label} frame answered {answer.status_code}, {len(answer.content)} bytes"
                )
        yield from percentiles(latencies[3:], f"{label}_frame_latency")


# -- the engine's child process ---------------------------------------------------------------


async def _serve() -> None:
    """The engine as ``esb run`` starts it; prints its ports, answers ``stats``, runs until stdin is closed."""
    from esb.runtime.engine import Engine
    from esb.settings import load_settings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="engine %(levelname)s %(name)s: %(message)s")
    engine = Engine(load_settings())
    await engine.start()
    try:
        route = engine.routes.get("dicom-in")
        port = int(route.consumer.port) if route is not None and route.consumer is not None else 0  # type: ignore[attr-defined]
        print(json.dumps({"http_port": engine.http_port, "dicom_port": port}), flush=True)
        while line := await asyncio.to_thread(sys.stdin.buffer.readline):
            if line.strip() == b"stats":
                received = engine.context.metrics.registry.get_sample_value(
                    "esb_route_received_total", {"route": "dicom-in"}
                )
                print(json.dumps({"received": int(received or 0)}), flush=True)
    finally:
        await engine.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        asyncio.run(_serve())
