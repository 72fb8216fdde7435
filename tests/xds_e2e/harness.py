"""The engine under test: the shipped XDS and HL7 routes, HTTP and MLLP on port 0, in a thread of its own.

The engine runs its event loop in a daemon thread so that the tests stay plain
synchronous code: zeep blocks only the test thread, and the MLLP client below is
a socket. One engine serves a whole test module (starting one costs about a
second); every test makes its own patients, so tests do not see each other's
documents. :func:`module_database` gives each engine a database of its own:
a SQLite file, or a fresh PostgreSQL schema dropped afterwards, as the ``db_url``
fixture of ``tests/conftest.py`` does per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from esb.runtime.engine import Engine
from esb.settings import load_settings
from profiles.xds.registry.schema import objects
from profiles.xds.repository.schema import documents
from tests.conftest import PG_URL, fresh_pg_schema
from tests.xds import samples

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_ROUTES = tuple(ROOT / "routes" / f"{name}.yaml" for name in ("xds-registry", "xds-repository", "hl7-in"))
START_TIMEOUT = 30.0


@contextlib.contextmanager
def module_database(kind: str, directory: Path) -> Iterator[str]:
    """A database URL for one engine: ``sqlite`` (a file in ``directory``) or ``postgresql`` (a fresh schema)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory}/esb.db"
        return
    if not PG_URL:
        pytest.skip("ESB_TEST_PG_URL is not set")
    with fresh_pg_schema(PG_URL) as url:
        yield url


@dataclasses.dataclass(frozen=True)
class Counts:
    """What a refused request must leave unchanged: registry objects, repository rows, stored files."""

    objects: int
    documents: int
    files: int


class RunningEngine:
    """An :class:`Engine` started on its own event loop in a daemon thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="xds-e2e-engine", daemon=True)

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = START_TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self.engine.start())

    def stop(self) -> None:
        try:
            self.run(self.engine.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(START_TIMEOUT)
            self.loop.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.engine.http_port}"

    @property
    def registry_url(self) -> str:
        return f"{self.base_url}/xds/registry"

    @property
    def repository_url(self) -> str:
        return f"{self.base_url}/xds/repository"

    @property
    def mllp_port(self) -> int:
        consumer: Any = self.engine.routes["hl7-in"].consumer
        return int(consumer.port)

    @property
    def db(self) -> sa.Engine:
        engine: sa.Engine = self.engine.journal.engine
        return engine

    @property
    def store_root(self) -> Path:
        return self.engine.settings.data_dir / "documents"

    def patient(self) -> str:
        """A fresh active EMPI master patient ID (CX), inserted as the EMPI would have it."""
        return samples.add_patient(self.db)

    def counts(self) -> Counts:
        with self.db.connect() as conn:
            n_objects = conn.execute(sa.select(sa.func.count()).select_from(objects)).scalar_one()
            n_documents = conn.execute(sa.select(sa.func.count()).select_from(documents)).scalar_one()
        files = sum(len(names) for _, _, names in os.walk(self.store_root))
        return Counts(n_objects, n_documents, files)

    def spooled(self) -> list[str]:
        """MTOM parts still spooled (a refused request must leave none)."""
        spool = self.engine.settings.spool_dir
        return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


@contextlib.contextmanager
def running_engine(directory: Path, db_url: str, routes: Sequence[Path] = SHIPPED_ROUTES) -> Iterator[RunningEngine]:
    """Start an engine serving ``routes`` (files, copied unless they sit in ``directory`` already)."""
    route_dir = directory / "routes"
    route_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = [route_dir]
    for route in routes:
        if route.parent == route_dir:
            continue
        if route.parent == ROOT / "routes":
            shutil.copy(route, route_dir)
        else:  # loaded where it is, so its relative paths (an XSLT next to it) still resolve
            paths.append(route)
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("ESB_XDS_")]:
            env.delenv(name)
        env.setenv("ESB_HTTP_PORT", "0")
        env.setenv("ESB_MLLP_PORT", "0")
        env.setenv("ESB_LISTEN_HOST", "127.0.0.1")
        env.setenv("ESB_EMPI_LISTENERS", str(directory / "no-listeners.yaml"))
        settings = dataclasses.replace(
            load_settings(),
            data_dir=directory / "var",
            db_url=db_url,
            http_port=0,
            listen_host="127.0.0.1",
            route_paths=tuple(paths),
            delivery_poll=0.05,
            shutdown_timeout=5.0,
            node_id=f"xds-e2e-{uuid.uuid4().hex[:8]}",
        )
        running = RunningEngine(Engine(settings))
        try:  # a start that fails half-way still closes what it opened (the database pool)
            running.start()
            yield running
        finally:
            running.stop()


# -- HL7 v2 over MLLP (ITI-8, ITI-9) ------------------------------------------------------

SB, EB, CR = b"\x0b", b"\x1c", b"\r"


class MllpClient:
    """A blocking MLLP connection: one message out, one answer back."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def call(self, message: str) -> list[list[str]]:
        """Send ``message`` (segments joined by CR); the answer as segments split into fields."""
        self.sock.sendall(SB + message.encode("utf-8") + EB + CR)
        data = b""
        while not data.endswith(EB + CR):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed after {data!r}")
            data += chunk
        text = data[data.index(SB) + 1 : -2].decode("utf-8")
        return [segment.split("|") for segment in text.split("\r") if segment]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def segment(answer: list[list[str]], name: str) -> list[str]:
    for fields in answer:
        if fields[0] == name:
            return fields
    raise AssertionError(f"no {name} segment in {answer}")
