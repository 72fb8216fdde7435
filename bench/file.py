"""Drop-folder relay: ``file:`` consumer -> journal -> ``to: file:`` producer, in files/s.

The most common integration of all (a modality or RIS writes files, another
system picks them up), with every durability step it promises: claim by
rename, journal commit, move to ``.done``, queued delivery, write to a hidden
temp file, fsync, link into place, fsync the directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import os
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.runner import Figure, Run, rate, register
from esb.runtime.engine import Engine
from esb.settings import load_settings

#: an HL7 v2 message of about 1 KiB, the usual content of such a folder
BODY = (b"MSH|^~\\&|RIS|HOSP|PACS|REGION|20261129120000||ORM^O01|MSG0001|P|2.5\r" + b"OBR|1||ACC123^RIS|CT^Head" * 40)[
    :1024
]

ROUTE = """
    route:
      id: relay
      from: file://{inbox}?poll=100ms
      steps:
        - to: file://{outbox}
"""


def _visible(folder: Path) -> int:
    """Files a reader of ``folder`` would see (writers' hidden temp files are not counted)."""
    try:
        return sum(1 for entry in os.scandir(folder) if not entry.name.startswith(".") and entry.is_file())
    except FileNotFoundError:
        return 0


@register("file", n=4000, quick_n=20, summary="file: consumer -> to: file: producer on a temp dir, files/s")
def file_bench(run: Run) -> Iterator[Figure]:
    try:
        importlib.import_module("adapters.file")
    except ImportError:
        yield Figure("end_to_end", skipped="file adapter missing")
        return
    yield from asyncio.run(_measure(run))


async def _measure(run: Run) -> list[Figure]:
    scratch = run.db.scratch
    inbox, outbox, staging, routes = (scratch / name for name in ("inbox", "outbox", "staging", "routes"))
    for folder in (inbox, outbox, staging, routes):
        folder.mkdir()
    (routes / "relay.yaml").write_text(
        textwrap.dedent(ROUTE.format(inbox=inbox, outbox=outbox)).lstrip(), encoding="utf-8"
    )
    # Written beforehand and renamed in at once, so the figure is the engine's, not the writer's.
    for index in range(run.n):
        (staging / f"order-{index:06d}.hl7").write_bytes(BODY)
    settings = dataclasses.replace(
        load_settings(),
        data_dir=scratch / "var",
        db_url=run.db.url,
        http_port=0,
        route_paths=(routes,),
        node_id="bench",
        shutdown_timeout=10.0,
    )
    engine = Engine(settings)
    await engine.start()
    try:
        begin = time.perf_counter()
        for path in staging.iterdir():
            os.rename(path, inbox / path.name)
        done = inbox / ".done"
        taken = await _until(lambda: _visible(done) >= run.n, run.n, "moved to .done")
        written = await _until(lambda: _visible(outbox) >= run.n, run.n, "written to the outbox")
    finally:
        await engine.stop()
    return [
        Figure("intake", rate(run.n, taken - begin), "files/s"),
        Figure("end_to_end", rate(run.n, written - begin), "files/s"),
    ]


async def _until(check: Callable[[], bool], n: int, what: str) -> float:
    """Poll ``check`` until true; returns when it was seen true (perf_counter, within one poll)."""
    deadline = time.monotonic() + max(60.0, n / 10)
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"file benchmark: not all {n} files were {what} in time")
        await asyncio.sleep(0.05)  # a scan of n entries: not too often, it shares the loop
    return time.perf_counter()
