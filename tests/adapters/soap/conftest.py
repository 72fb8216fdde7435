"""Fixtures for the SOAP adapter tests: an engine with SOAP routes, an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from esb.runtime.engine import Engine
from tests.adapters.soap import steps
from tests.conftest import write_routes
from tests.support import StartEngine

SoapEngine = Callable[..., Awaitable[Engine]]


def route(source: str, *steps_yaml: str, route_id: str = "r") -> str:
    lines = "\n".join(f"    - {s}" for s in steps_yaml)
    body = f"\n{lines}" if steps_yaml else " []"
    return f"route:\n  id: {route_id}\n  from: {source}\n  steps:{body}\n"


@pytest.fixture
async def soap_engine(tmp_path: Path, start_engine: StartEngine) -> SoapEngine:
    """``await soap_engine({"id": (from_uri, step, ...)}, **settings)`` -> a started engine."""

    async def start(routes: dict[str, tuple[str, ...]], **settings: object) -> Engine:
        texts = {rid: route(source, *rest, route_id=rid) for rid, (source, *rest) in routes.items()}
        write_routes(tmp_path / "routes", {k: v for k, v in texts.items()})
        return await start_engine(**settings)

    return start


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(autouse=True)
def _clear_received() -> None:
    steps.RECEIVED.clear()
