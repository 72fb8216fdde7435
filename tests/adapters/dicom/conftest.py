"""Fixtures for the ``dicom:`` adapter tests: an engine with DICOM routes, the archive double, peers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from esb import registry
from esb.components import Service
from esb.runtime.engine import Engine
from tests.adapters.dicom import support
from tests.adapters.dicom.archive_double import ArchiveDoubleService
from tests.conftest import write_routes
from tests.support import StartEngine

DicomEngine = Callable[..., Awaitable[Engine]]


@pytest.fixture(autouse=True)
def _archive_double(monkeypatch: pytest.MonkeyPatch) -> None:
    """``service:test-archive`` resolves to the archive double (registry lookups are by entry point)."""
    original = registry.service_class

    def service_class(name: str) -> type[Service]:
        return ArchiveDoubleService if name == "test-archive" else original(name)

    monkeypatch.setattr(registry, "service_class", service_class)


@pytest.fixture(autouse=True)
def _clear_received() -> None:
    support.RECEIVED.clear()


@pytest.fixture
def dicom_engine(tmp_path: Path, start_engine: StartEngine) -> DicomEngine:
    """``await dicom_engine(query, *steps, route_id="r", more={id: text})`` -> a started engine.

    The route listens on a free port of 127.0.0.1 with ``query`` (ae_title=ESB and the
    archive double unless given).
    """

    async def start(query: str = "", *steps: str, on_error: str = "", **settings: Any) -> Engine:
        write_routes(tmp_path / "routes", {"r": support.route(query, *steps, on_error=on_error)})
        return await start_engine(**settings)

    return start


@pytest.fixture
def dicom_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, int]], Path]:
    """Write a config/dicom.yaml naming remote AEs ``{title: port}`` on 127.0.0.1 and point the engine at it."""

    def write(remotes: dict[str, int]) -> Path:
        lines = ["remote_aes:"] + [f"  {name}: {{host: 127.0.0.1, port: {port}}}" for name, port in remotes.items()]
        path = tmp_path / "dicom.yaml"
        path.write_text("\n".join(lines) + "\n" if remotes else "remote_aes: {}\n", encoding="utf-8")
        monkeypatch.setenv("ESB_DICOM_CONFIG", str(path))
        return path

    return write
