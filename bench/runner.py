"""The common benchmark runner: a registry of benchmarks, databases to run them on, JSON lines out.

Every figure is printed as one JSON object per line on stdout, with the machine
and database it was measured on, so results from several machines (or several
commits) can be concatenated and compared with ``jq`` without a parser of ours.
Logs and progress go to stderr and never mix with the figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import pkgutil
import platform
import sqlite3
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any, Literal, TextIO

import sqlalchemy as sa

#: modules under ``bench/`` that register benchmarks, in the order ``all`` runs them

DbKind = Literal["sqlite", "postgresql"]
DB_KINDS: tuple[DbKind, ...] = ("sqlite", "postgresql")
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Figure:
    """One measured value; ``skipped`` instead of a value when it could not be measured."""

    metric: str
    value: float | None = None
    unit: str = ""
    skipped: str | None = None


@dataclass(frozen=True)
class Database:
    """Where a benchmark keeps its journal: a URL that nobody else uses, and a scratch dir."""

    kind: DbKind
    url: str
    version: str
    scratch: Path


@dataclass(frozen=True)
class Run:
    """What a benchmark function gets: its database, its size, and whether this is a smoke run."""

    db: Database
    n: int
    quick: bool


BenchFn = Callable[[Run], Iterable[Figure]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    fn: BenchFn
    summary: str
    n: int
    quick_n: int


REGISTRY: dict[str, Benchmark] = {}


def register(name: str, *, n: int, quick_n: int, summary: str) -> Callable[[BenchFn], BenchFn]:
    """Register ``fn`` as benchmark ``name`` with its default and ``--quick`` sizes."""

    def decorate(fn: BenchFn) -> BenchFn:
        if name in REGISTRY:
            raise ValueError(f"benchmark '{name}' is registered twice")
        REGISTRY[name] = Benchmark(name, fn, summary, n, quick_n)
        return fn

    return decorate


def load_all() -> dict[str, Benchmark]:
    # every module of the package registers its benchmarks on import
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name not in ("runner", "__main__"):
            import_module(f"bench.{module.name}")
    return REGISTRY


# -- machine and databases ------------------------------------------------------------


def _proc_field(path: str, key: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    return None


@cache
def machine() -> dict[str, Any]:
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "mem_gb": round(int(mem_kb.split()[0]) / 1024 / 1024, 1) if mem_kb else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _load() -> float | None:
    """The 1-minute load average when the figure was taken: other work on the machine skews it."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def pg_base_url() -> str:
    return os.environ.get("ESB_BENCH_PG_URL") or os.environ.get("ESB_TEST_PG_URL") or DEFAULT_PG_URL


@contextlib.contextmanager
def database(kind: DbKind) -> Iterator[Database]:
    """A fresh journal location: a SQLite file in a temp dir, or a PostgreSQL schema dropped afterwards."""
    with tempfile.TemporaryDirectory(prefix="esb-bench-") as tmp:
        scratch = Path(tmp)
        if kind == "sqlite":
            yield Database(kind, f"sqlite:///{scratch}/journal.db", sqlite3.sqlite_version, scratch)
            return
        base = pg_base_url()
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(base)
        try:
            with admin.begin() as conn:
                version = str(conn.execute(sa.text("SHOW server_version")).scalar_one())
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            # Same trick as tests/conftest.py: every connection of the URL lands in the schema.
            separator = "&" if "?" in base else "?"
            try:
                yield Database(kind, f"{base}{separator}options=-csearch_path%3D{schema}", version, scratch)
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        finally:
            admin.dispose()


# -- statistics helpers for benchmarks ------------------------------------------------


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def percentiles(samples_s: list[float], metric: str) -> list[Figure]:
    """p50, p95 and p99 of latencies given in seconds, as figures in milliseconds."""
    if len(samples_s) < 2:
        return []
    cuts = statistics.quantiles(samples_s, n=100, method="inclusive")
    return [
        Figure(f"{metric}_p50", round(cuts[49] * 1000, 3), "ms"),
        Figure(f"{metric}_p95", round(cuts[94] * 1000, 3), "ms"),
        Figure(f"{metric}_p99", round(cuts[98] * 1000, 3), "ms"),
    ]


# -- running --------------------------------------------------------------------------


def emit(out: TextIO, bench: Benchmark, db: Database | None, kind: DbKind, n: int, figure: Figure) -> None:
    line: dict[str, Any] = {"bench": bench.name, "metric": figure.metric}
    if figure.skipped is not None:
        line["skipped"] = figure.skipped
    else:
        line.update(value=figure.value, unit=figure.unit)
    line.update(db=kind, db_version=db.version if db else None, n=n, machine=machine(), loadavg=_load())
    out.write(json.dumps(line) + "\n")
    out.flush()


@dataclass
class Report:
    """What a whole invocation did, for the exit status."""

    failures: list[str] = field(default_factory=list)


def run(names: list[str], kinds: Iterable[DbKind], *, n: int | None, quick: bool, out: TextIO = sys.stdout) -> Report:
    """Run each named benchmark on each database; a failure is reported and the rest still run."""
    benchmarks = load_all()
    report = Report()
    for name in names:
        bench = benchmarks[name]
        size = n if n is not None else (bench.quick_n if quick else bench.n)
        for kind in kinds:
            print(f"bench {name} on {kind}, n={size}", file=sys.stderr)
            try:
                with database(kind) as db:
                    for figure in bench.fn(Run(db, size, quick)):
                        emit(out, bench, db, kind, size, figure)
            except Exception as exc:
                # A down PostgreSQL must not hide the SQLite figures: say so and go on.
                report.failures.append(f"{name} on {kind}: {type(exc).__name__}: {exc}")
                emit(out, bench, None, kind, size, Figure("error", skipped=f"{type(exc).__name__}: {exc}"))
    return report
