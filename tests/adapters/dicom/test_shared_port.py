"""dicom: reuse_port=true lets several engines (processes, here two in one) serve one DICOM port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.adapters.dicom import support
from tests.adapters.dicom.support import association, free_port
from tests.conftest import write_routes
from tests.dicom_support import series
from tests.support import StartEngine

pytestmark = pytest.mark.filterwarnings("error")


async def test_two_engines_share_a_port_and_the_kernel_spreads_associations(
    tmp_path: Path, start_engine: StartEngine
) -> None:
    port = free_port()
    route = support.route("archive=&reuse_port=true").replace("127.0.0.1:0", f"127.0.0.1:{port}")
    write_routes(tmp_path / "routes", {"r": route})
    first = await start_engine()
    second = await start_engine(data_dir=tmp_path / "var2", db_url=f"sqlite:///{tmp_path}/var2.db", node_id="other")
    assert support.port_of(first) == support.port_of(second) == port

    files = series(tmp_path / "in", 24)

    def store_each_on_its_own_association(files: list[Path]) -> list[int]:
        statuses = []
        for file in files:
            with association(port, support.store_contexts(file)) as assoc:
                statuses.append(int(assoc.send_c_store(dcmread(file)).Status))
        return statuses

    assert await asyncio.to_thread(store_each_on_its_own_association, files[:20]) == [0] * 20
    by_first, by_second = len(support.journaled(first)), len(support.journaled(second))
    assert by_first > 0 and by_second > 0 and by_first + by_second == 20  # each journaled in its own database

    await first.stop()
    assert await asyncio.to_thread(store_each_on_its_own_association, files[20:]) == [0] * 4
    assert len(support.journaled(second)) == by_second + 4  # the other engine keeps the port served
