"""EMPI identity feed over MLLP: ADT^A01/A08 into the shipped route against a preloaded index.

``n`` is the number of patients preloaded with the bulk loader (seeded
synthetic Chinese registrations, about 2.2 per person, so many link); the
preload time is a figure of its own. Then a real :class:`Engine` runs
``routes/hl7-in.yaml`` (``ack=application``: the ACK leaves after the EMPI
placed the patient) and four senders in a child process, each on its own
connection and waiting for each ACK, send ``ESB_BENCH_EMPI_MESSAGES``
messages (default 4000): half A01 for new patients from a fresh population,
half A08 updates of preloaded patients. The figures: messages/s and ACK
latency p50/p99.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.runner import Figure, Run, percentiles, rate, register
from profiles.empi.model import PatientRecord

ROOT = Path(__file__).resolve().parents[1]
SENDERS = 4
WARM_UP = 100
PRELOAD_BATCH = 10_000
#: persons per generated chunk of the preload (about 2.2 registrations each), to bound memory
CHUNK_PERSONS = 40_000


def messages_wanted(quick: bool) -> int:
    return 100 if quick else int(os.environ.get("ESB_BENCH_EMPI_MESSAGES", "4000"))


def population(n: int, seed: int, keep: int, kept: list[PatientRecord]) -> Iterator[PatientRecord]:
    """``n`` registrations, generated chunk by chunk; every ``keep``-th is remembered for updates."""
    from profiles.empi.matching.synthetic import generate

    produced = 0
    for chunk in itertools.count():
        for record in generate(min(CHUNK_PERSONS, n // 2 + 50), seed=seed + chunk).records():
            if produced == n:
                return
            if produced % keep == 0:
                kept.append(record)
            produced += 1
            yield record


def _hd(record: PatientRecord) -> str:
    d = record.identifiers[0].domain
    return f"{d.namespace}&{d.universal_id}&{d.universal_id_type}"


def adt(record: PatientRecord, trigger: str, control: str) -> str:
    """An ADT message for ``record`` (the fields the synthetic generator fills)."""
    name = record.names[0] if record.names else None
    address = record.addresses[0] if record.addresses else None
    xad = f"{address.street}^^{address.city}^{address.state}^{address.postal_code}^CHN" if address else ""
    nid = f"~{record.national_id}^^^&2.16.156.10011.1.1&ISO^NNCHN" if record.national_id else ""
    family, given = (name.family, name.given) if name else ("", "")
    phone = record.phones[0] if record.phones else ""
    stamp = "20261129120000"
    return "\r".join(
        (
            f"MSH|^~\\&|{record.source}|HOSP|EMPI|REGION|{stamp}||ADT^{trigger}^ADT_A01|{control}|P|2.5"
            "|||||||UNICODE UTF-8",
            f"EVN|{trigger}|{stamp}",
            f"PID|1||{record.identifiers[0].value}^^^{_hd(record)}^MR{nid}||{family}^{given}||{record.birth_date}"
            f"|{record.sex}|||{xad}||{phone}",
            "PV1|1|O",
        )
    )


def preload(url: str, n: int) -> tuple[float, list[PatientRecord], dict[str, int]]:
    from esb.journal import Journal
    from profiles.empi.bulk import load
    from profiles.empi.service import build_index

    journal = Journal(url)
    try:
        journal.upgrade()
        kept: list[PatientRecord] = []
        started = time.perf_counter()
        index = build_index(journal.engine)
        report = load(
            journal.engine, population(n, 1000, max(1, n // 5000), kept), batch_size=PRELOAD_BATCH, index=index,
            progress=lambda r: print(f"  preload {r.read}/{n}", file=sys.stderr),
        )  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        journal.close()
    counts = {"loaded": report.loaded, "persons": report.persons, "linked": report.linked}
    return seconds, kept, counts


@register("empi-feed", n=1_000_000, quick_n=300, summary="ADT A01/A08 over MLLP into the EMPI, n patients preloaded")
def empi_feed_bench(run: Run) -> Iterator[Figure]:
    seconds, kept, counts = preload(run.db.url, run.n)
    yield Figure("preload_seconds", round(seconds, 1), "s")
    yield Figure("preload_rate", rate(run.n, seconds), "patients/s")
    yield Figure("preload_persons", counts["persons"], "persons")
    yield from asyncio.run(_measure(run, kept))


def _messages(kept: list[PatientRecord], count: int) -> list[str]:
    """Half new patients (A01), half updates of preloaded ones (A08), shuffled with a fixed seed."""
    from profiles.empi.matching.synthetic import generate

    fresh = [r for r in generate(count, seed=99).records() if r.identifiers][: count - count // 2]
    rng = random.Random(7)
    updates = [rng.choice(kept) for _ in range(count - len(fresh))]
    texts = [adt(r, "A01", f"n{i}") for i, r in enumerate(fresh)]
    texts += [adt(r, "A08", f"u{i}") for i, r in enumerate(updates)]
    rng.shuffle(texts)
    return texts


async def _measure(run: Run, kept: list[PatientRecord]) -> list[Figure]:
    from esb.runtime.engine import Engine
    from esb.settings import load_settings

    routes = run.db.scratch / "routes"
    routes.mkdir()
    shutil.copy(ROOT / "routes" / "hl7-in.yaml", routes)
    os.environ["ESB_MLLP_PORT"] = "0"
    os.environ["ESB_EMPI_LISTENERS"] = str(run.db.scratch / "no-listeners.yaml")
    settings = dataclasses.replace(
        load_settings(), data_dir=run.db.scratch / "var", db_url=run.db.url, http_port=0,
        route_paths=(routes,), node_id="bench", shutdown_timeout=10.0,
    )  # fmt: skip
    count = messages_wanted(run.quick)
    texts = _messages(kept, count + WARM_UP)
    feed = run.db.scratch / "messages.json"
    feed.write_text(json.dumps(texts), encoding="utf-8")
    engine = Engine(settings)
    await engine.start()
    try:
        port = int(engine.routes["hl7-in"].consumer.port)  # type: ignore[union-attr]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.empi_feed", str(port), str(feed),
            stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), timeout=max(300.0, count / 5))
        if process.returncode != 0:
            raise RuntimeError(f"empi-feed benchmark: the senders failed (exit {process.returncode})")
    finally:
        await engine.stop()
    result = json.loads(out)
    latencies = [float(x) for x in result["latencies"]]
    return [
        Figure("messages", count, "messages"),
        Figure("ack_rate", rate(count, float(result["seconds"])), "messages/s"),
        Figure("not_aa", int(result["not_aa"]), "messages"),
        *percentiles(latencies, "ack_latency"),
    ]


# -- the sender process ----------------------------------------------------------------


async def _sender(port: int, texts: list[str], latencies: list[float], bad: list[int]) -> None:
    from hl7.mllp import open_hl7_connection

    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    try:
        for text in texts:
            started = time.perf_counter()
            writer.writeblock(text.encode("utf-8"))
            await writer.drain()
            ack: bytes = await reader.readblock()
            latencies.append(time.perf_counter() - started)
            if b"MSA|AA|" not in ack:
                bad.append(1)
                print(f"not AA: {ack[:200]!r}", file=sys.stderr)
    finally:
        writer.close()


async def _send_all(port: int, texts: list[str]) -> dict[str, object]:
    warm, texts = texts[:WARM_UP], texts[WARM_UP:]
    bad: list[int] = []
    await asyncio.gather(*(_sender(port, warm[i::SENDERS], [], bad) for i in range(SENDERS)))
    latencies: list[float] = []
    bad.clear()
    started = time.perf_counter()
    await asyncio.gather(*(_sender(port, texts[i::SENDERS], latencies, bad) for i in range(SENDERS)))
    return {"seconds": time.perf_counter() - started, "latencies": latencies, "not_aa": len(bad)}


if __name__ == "__main__":
    port_arg, file_arg = sys.argv[1:3]
    print(json.dumps(asyncio.run(_send_all(int(port_arg), json.loads(Path(file_arg).read_text("utf-8"))))))
