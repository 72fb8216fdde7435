"""ITI-41 Provide and Register Document Set-b through the shipped XDS routes, over HTTP on 127.0.0.1.

``xds-provide``: a real :class:`Engine` runs ``routes/xds-registry.yaml`` and
``routes/xds-repository.yaml`` on an HTTP port of its own; four Document
Sources in a child process (so the client's CPU work is not the engine's)
send MTOM submissions of one document each with :func:`adapters.soap.client.call`,
each source waiting for its RegistryResponse before the next, first ``n``
documents of 100 KB, then ``n / 10`` (at least four) of 10 MB. Every answer
must be Success. Figures per size: submissions/s, MB/s (MB = 2^20 bytes) and
latency from the first byte sent to the answer read.

``xds-provide-large``: the engine runs in a child process of its own (started
like ``esb run``, configured by ``ESB_*`` variables) and receives one document
of ``n`` MB, made up while it is sent, so the client never holds it either.
After start-up and one small submission its peak RSS is reset (``5`` into
``/proc/<pid>/clear_refs``), so ``VmHWM`` after the upload is the upload's own
peak: the growth over the RSS before says whether receiving a document costs
memory in proportion to it (the SOAP consumer promises it does not; with the
part held in memory, 50 MB grow the peak by about 100 MB). The answer must be
Success, and the stored document's size and SHA-1 those of what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from lxml import etree

from adapters.soap.client import call
from adapters.soap.envelope import MAX_XML, parse_envelope
from adapters.soap.envelope import request as soap_request
from adapters.soap.mtom import read_package
from bench.runner import Figure, Run, percentiles, rate, register
from bench.xds_metadata import MIME_TYPE, add_patients, block, new_oid, provide_request, streamed_package
from esb.errors import SoapFaultError
from esb.exchange import Attachment
from esb.journal import database
from esb.runtime.engine import Engine
from esb.settings import load_settings
from esb.storage import LocalDiskStore
from profiles.empi.config import load_empi_config
from profiles.xds import ebxml
from profiles.xds.repository.schema import documents

ROOT = Path(__file__).resolve().parents[1]
ROUTES = ("xds-registry.yaml", "xds-repository.yaml")
SENDERS = 4
KIB = 1024
MIB = 1024 * 1024
SIZES = (("100kb", 100 * KIB), ("10mb", 10 * MIB))
PATIENTS = 50
#: what the engine's process reads from the environment, for both benchmarks
ENGINE_ENV = {"ESB_HTTP_PORT": "0", "ESB_LISTEN_HOST": "127.0.0.1", "ESB_XDS_REGISTRY_URL": "", "ESB_XDS_STORAGE": ""}


def _copy_routes(scratch: Path) -> Path:
    routes = scratch / "routes"
    routes.mkdir()
    for name in ROUTES:
        shutil.copy(ROOT / "routes" / name, routes)
    return routes


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _master_oid() -> str:
    return load_empi_config().master_domain.universal_id


def _stored(engine: Any) -> list[Any]:
    """The repository's document rows (status, size, hash)."""

    with engine.connect() as conn:
        return list(conn.execute(sa.select(documents)))


# -- xds-provide: throughput ---------------------------------------------------------


@register("xds-provide", n=400, quick_n=12, summary="ITI-41 over HTTP, shipped routes: n x 100 KB, n/10 x 10 MB")
def provide_bench(run: Run) -> Iterator[Figure]:
    with _environ(ENGINE_ENV):
        yield from asyncio.run(_measure(run))


def counts(n: int) -> dict[str, int]:
    return {"100kb": n, "10mb": max(SENDERS, n // 10)}


async def _measure(run: Run) -> list[Figure]:
    settings = dataclasses.replace(
        load_settings(), data_dir=run.db.scratch / "var", db_url=run.db.url, http_port=0,
        route_paths=(_copy_routes(run.db.scratch),), node_id="bench", shutdown_timeout=30.0,
    )  # fmt: skip
    engine = Engine(settings)
    await engine.start()
    figures: list[Figure] = []
    sent = 0
    try:
        patients = await asyncio.to_thread(add_patients, engine.journal.engine, PATIENTS, _master_oid())
        feed = run.db.scratch / "patients.json"
        feed.write_text(json.dumps(patients), encoding="utf-8")
        url = f"http://127.0.0.1:{engine.http_port}/xds/repository"
        for label, size in SIZES:
            count = counts(run.n)[label]
            warm = SENDERS if size < MIB else 0
            result = await _senders(url, size, count, warm, feed)
            sent += count + warm
            seconds = float(result["seconds"])
            figures.append(Figure(f"{label}_submissions", count, "submissions"))
            figures.append(Figure(f"{label}_rate", rate(count, seconds), "submissions/s"))
            figures.append(Figure(f"{label}_throughput", round(count * size / MIB / seconds, 1), "MB/s"))
            figures += percentiles([float(x) for x in result["latencies"]], f"{label}_latency")
        rows = await asyncio.to_thread(_stored, engine.journal.engine)
    finally:
        await engine.stop()
    available = sum(1 for row in rows if row.status == "available")
    if available != sent:
        raise RuntimeError(f"xds-provide: {sent} submissions answered Success, {available} documents available")
    return figures


async def _senders(url: str, size: int, count: int, warm: int, patients: Path) -> dict[str, Any]:
    """The Document Sources, in a child process: {"seconds": for ``count`` submissions, "latencies": [...]}."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.xds_provide", "send", url, str(size), str(count), str(warm), str(patients),
        stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=max(300.0, count * size / MIB))
    if process.returncode != 0:
        raise RuntimeError(f"xds-provide: the senders failed (exit {process.returncode}), see stderr")
    result: dict[str, Any] = json.loads(out)
    return result


async def _submit(session: Any, url: str, patient: str, content: bytes, sha1: str) -> str:
    """One ITI-41 submission; "" on Success, else what went wrong."""
    content_id = f"{uuid.uuid4().hex}@bench.esb"
    payload = provide_request(patient, content_id, unique_id=new_oid(), size=len(content), sha1=sha1)
    try:
        answer, _, _ = await call(
            url, payload, action=ebxml.ACTION_ITI41, attachments=[Attachment(content_id, MIME_TYPE, data=content)],
            session=session, timeout=600,
        )  # fmt: skip
    except SoapFaultError as exc:
        return f"SOAP Fault {exc.code}: {exc.reason}"
    response = etree.fromstring(answer)
    if response.get("status") == ebxml.SUCCESS:
        return ""
    return etree.tostring(response, encoding="unicode")[:600]


async def _source(session: Any, url: str, turns: range, patients: list[str], content: bytes, sha1: str,
                  latencies: list[float]) -> None:  # fmt: skip
    for turn in turns:
        started = time.perf_counter()
        problem = await _submit(session, url, patients[turn % len(patients)], content, sha1)
        if problem:
            raise RuntimeError(f"submission {turn} was not a Success: {problem}")
        latencies.append(time.perf_counter() - started)


async def _send_all(url: str, size: int, count: int, warm: int, patients: list[str]) -> dict[str, Any]:
    content = b"".join(block(size, seed=size))
    sha1 = hashlib.sha1(content).hexdigest()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=SENDERS)) as session:
        await asyncio.gather(*(_source(session, url, range(i, warm, SENDERS), patients, content, sha1, [])
                               for i in range(SENDERS)))  # fmt: skip
        latencies: list[float] = []
        started = time.perf_counter()
        await asyncio.gather(*(_source(session, url, range(i, count, SENDERS), patients, content, sha1, latencies)
                               for i in range(SENDERS)))  # fmt: skip
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies": latencies}


# -- xds-provide-large: memory while one large document comes in ---------------------


def vm_kib(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (VmHWM: peak resident set; VmRSS: resident now)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


@register("xds-provide-large", n=500, quick_n=50, summary="engine peak RSS while it receives one n MB ITI-41 document")
def large_bench(run: Run) -> Iterator[Figure]:
    yield from asyncio.run(_measure_large(run))


async def _measure_large(run: Run) -> list[Figure]:
    size = run.n * MIB
    free = shutil.disk_usage(run.db.scratch).free
    if free < 3 * size:  # the spooled MIME part, the stored blob, and room to spare
        raise RuntimeError(f"xds-provide-large: {free // MIB} MB free in {run.db.scratch}, {3 * run.n} MB needed")
    db = database.make_engine(run.db.url)
    try:
        database.upgrade(db)
        [patient] = add_patients(db, 1, _master_oid())
        env = {
            **os.environ, **ENGINE_ENV, "ESB_DB_URL": run.db.url, "ESB_DATA_DIR": str(run.db.scratch / "var"),
            "ESB_ROUTES": str(_copy_routes(run.db.scratch)), "ESB_NODE_ID": "bench", "ESB_LOG_LEVEL": "warning",
            "ESB_SHUTDOWN_TIMEOUT": "30s",
        }  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.xds_provide", "serve", env=env, cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            figures, unique_id, sha1 = await _upload(process, patient, size)
        finally:
            await _stop(process)
        rows = {row.unique_id: row for row in _stored(db)}
    finally:
        db.dispose()
    row = rows.get(unique_id)
    if row is None or row.status != "available" or (row.size, row.hash) != (size, sha1):
        found = None if row is None else (row.status, row.size, row.hash)
        raise RuntimeError(f"xds-provide-large: stored {found}, sent ({size} bytes, SHA-1 {sha1})")
    blob = run.db.scratch / "var" / "documents"

    if LocalDiskStore(blob).size(row.storage_key) != size:
        raise RuntimeError("xds-provide-large: the stored blob's size differs from the document's")
    return figures


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Closing its stdin stops the engine; one that does not stop in time is killed."""
    if process.returncode is None:
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=60)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _upload(process: asyncio.subprocess.Process, patient: str, size: int) -> tuple[list[Figure], str, str]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
    if not line:
        raise RuntimeError("xds-provide-large: the engine did not start, see stderr")
    url = f"http://127.0.0.1:{json.loads(line)['port']}/xds/repository"
    pid = process.pid
    async with aiohttp.ClientSession() as session:
        # One small submission first: what the first request loads (schemas, SQL) is not the document's cost.
        small = b"".join(block(100 * KIB))
        problem = await _submit(session, url, patient, small, hashlib.sha1(small).hexdigest())
        if problem:
            raise RuntimeError(f"xds-provide-large: the warm-up submission failed: {problem}")
        await asyncio.sleep(0.5)
        startup_peak = vm_kib(pid, "VmHWM")
        # "5" resets the peak to the current RSS (Linux 4.0+), so VmHWM afterwards is the upload's peak alone.
        Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="ascii")
        rss_before = vm_kib(pid, "VmRSS")
        unique_id = new_oid()
        content_id = f"{uuid.uuid4().hex}@bench.esb"
        envelope = soap_request(
            etree.fromstring(provide_request(patient, content_id, unique_id=unique_id)),
            action=ebxml.ACTION_ITI41, to=url,
        )  # fmt: skip
        sha1 = hashlib.sha1()
        content_type, length, body = streamed_package(envelope, content_id, size, sha1)
        started = time.perf_counter()
        async with session.post(
            url, data=body, headers={"Content-Type": content_type, "Content-Length": str(length)},
            timeout=aiohttp.ClientTimeout(total=3600),
        ) as answer:  # fmt: skip
            reply, status, reply_type = await answer.read(), answer.status, answer.headers.get("Content-Type", "")
        seconds = time.perf_counter() - started
    peak, rss_after = vm_kib(pid, "VmHWM"), vm_kib(pid, "VmRSS")
    outcome = await _response_status(reply_type, reply)
    if status != 200 or outcome != ebxml.SUCCESS:
        raise RuntimeError(f"xds-provide-large: HTTP {status}, status {outcome!r}: {reply[:600]!r}")
    figures = [
        Figure("document_mb", size // MIB, "MB"),
        Figure("startup_peak_mb", round(startup_peak / KIB, 1), "MB"),
        Figure("rss_before_mb", round(rss_before / KIB, 1), "MB"),
        Figure("rss_peak_mb", round(peak / KIB, 1), "MB"),
        Figure("rss_growth_mb", round((peak - rss_before) / KIB, 1), "MB"),
        Figure("rss_after_mb", round(rss_after / KIB, 1), "MB"),
        Figure("upload_seconds", round(seconds, 2), "s"),
        Figure("upload_rate", round(size / MIB / seconds, 1), "MB/s"),
    ]
    return figures, unique_id, sha1.hexdigest()


async def _response_status(content_type: str, reply: bytes) -> str:
    """The status of the RegistryResponse in a reply (MTOM or plain SOAP); "" when there is none."""

    async def chunks() -> AsyncIterator[bytes]:
        yield reply

    root = reply
    if content_type.startswith("multipart/related"):
        package = await read_package(chunks(), content_type, spool_dir=None, max_xml=MAX_XML, max_body=len(reply),
                                     memory_limit=len(reply) + 1)  # fmt: skip
        root = package.root
    try:
        payload = parse_envelope(root).payload
    except SoapFaultError as exc:
        return f"not a RegistryResponse: {exc.reason}"
    return str(payload.get("status", "")) if payload.tag == ebxml.q("rs", "RegistryResponse") else ""


# -- the child processes -----------------------------------------------------------------


async def _serve() -> None:
    """The engine as ``esb run`` starts it; prints its HTTP port, runs until stdin is closed."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="engine %(levelname)s %(name)s: %(message)s")
    engine = Engine(load_settings())
    await engine.start()
    try:
        print(json.dumps({"port": engine.http_port}), flush=True)
        await asyncio.to_thread(sys.stdin.buffer.read)
    finally:
        await engine.stop()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(_serve())
    else:
        url_arg, size_arg, count_arg, warm_arg, patients_arg = sys.argv[2:7]
        patient_ids = json.loads(Path(patients_arg).read_text(encoding="utf-8"))
        result = asyncio.run(_send_all(url_arg, int(size_arg), int(count_arg), int(warm_arg), patient_ids))
        print(json.dumps(result))
