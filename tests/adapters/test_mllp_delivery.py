"""mllp: listener guarantees: duplicates answered once processed once (nodes, restarts), order, load, TLS, mllp_send."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.adapters import mllp_support
from tests.adapters.mllp_support import adt, connect, mllp_route, port_of
from tests.adapters.test_mllp import journaled
from tests.support import StartEngine, wait_for
from tests.tlsutil import Certs, make_certs

MLLP_SEND = Path(sys.executable).parent / "mllp_send"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def control_ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["headers"]["hl7-control-id"] for r in rows]


async def test_duplicate_is_acked_again_not_processed_again_across_nodes_and_restarts(
    tmp_path: Path, start_engine: StartEngine, db_url: str
) -> None:
    mllp_route(tmp_path)
    mllp_route(tmp_path, "ack=application", "- transform: {python: tests.adapters.mllp_support:boom}", rid="fails")
    first = await start_engine(db_url=db_url, node_id="node-a")
    other = await start_engine(db_url=db_url, node_id="node-b")
    async with connect(port_of(first)) as client:
        assert (await client.call(adt("D-1"))).code == "AA"
        again = await client.call(adt("D-1"))
        assert (again.code, again.control_id) == ("AA", "D-1")
        assert (await client.call(adt("D-1", app="OTHER-HIS"))).code == "AA"  # another sender: not a duplicate
    async with connect(port_of(other)) as client:
        assert (await client.call(adt("D-1"))).code == "AA"  # the other node knows it too
    async with connect(port_of(first, "fails")) as client:
        failed = await client.call(adt("D-2"))
        repeated = await client.call(adt("D-2"))
    assert (failed.code, failed.error_code) == ("AE", "207")
    assert (repeated.code, repeated.error_code, repeated.text) == ("AE", "207", failed.text)
    await other.stop()
    await first.stop()
    restarted = await start_engine(db_url=db_url, node_id="node-a")
    async with connect(port_of(restarted)) as client:
        assert (await client.call(adt("D-1"))).code == "AA"
    async with connect(port_of(restarted, "fails")) as client:
        assert (await client.call(adt("D-2"))).code == "AE"
    rows = journaled(restarted)
    assert sorted(control_ids(rows)) == ["D-1", "D-1", "D-2"]
    assert sorted(r["headers"]["hl7-sending-application"] for r in rows if r["route_id"] == "r") == ["HIS", "OTHER-HIS"]


async def test_dedup_window_zero_processes_every_copy(tmp_path: Path, start_engine: StartEngine) -> None:
    mllp_route(tmp_path, "dedup_window=0")
    engine = await start_engine()
    async with connect(port_of(engine)) as client:
        for _ in range(2):
            assert (await client.call(adt("Z-1"))).code == "AA"
    assert control_ids(journaled(engine)) == ["Z-1", "Z-1"]


async def test_ordered_hands_a_connections_messages_over_one_at_a_time(
    tmp_path: Path, start_engine: StartEngine
) -> None:
    mllp_route(tmp_path, "ordered=true", "- transform: {python: tests.adapters.mllp_support:record_slowly}")
    engine = await start_engine()
    mllp_support.EVENTS.clear()
    sent = [f"O-{i}" for i in range(8)]
    async with connect(port_of(engine)) as client:
        for control_id in sent:
            assert (await client.call(adt(control_id))).code == "AA"
    await wait_for(lambda: len(mllp_support.EVENTS) == 2 * len(sent), what="all routes done")
    steps = [(kind, control_id) for kind, control_id, _ in mllp_support.EVENTS]
    assert steps == [(kind, c) for c in sent for kind in ("start", "end")]


async def test_many_concurrent_connections_are_all_acked(tmp_path: Path, start_engine: StartEngine) -> None:
    mllp_route(tmp_path)
    engine = await start_engine()

    async def sender(index: int) -> list[str]:
        async with connect(port_of(engine)) as client:
            acks = [await client.call(adt(f"C{index}-{n}"), timeout=30) for n in range(20)]
        assert {a.code for a in acks} == {"AA"}
        return [a.control_id for a in acks]

    answered = await asyncio.gather(*(sender(i) for i in range(20)))
    assert all(ids == [f"C{i}-{n}" for n in range(20)] for i, ids in enumerate(answered))
    assert len(set(control_ids(journaled(engine)))) == 400


async def test_tls_listener_requires_a_client_certificate(
    tmp_path: Path, start_engine: StartEngine, certs: Certs
) -> None:
    tls = f"tls=true&certfile={certs.server_cert}&keyfile={certs.server_key}&cafile={certs.ca}&client_auth=required"
    mllp_route(tmp_path, tls)
    engine = await start_engine()
    without = certs.client_context(with_cert=False)
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        async with connect(port_of(engine), ssl=without) as client:
            await client.call(adt("T-0"))
    async with connect(port_of(engine), ssl=certs.client_context(with_cert=True)) as client:
        assert (await client.call(adt("T-1"))).code == "AA"
    (row,) = journaled(engine)
    assert row["headers"]["mllp-tls-subject"] == "commonName=esb test client"


async def test_mllp_send_feeds_a_file_of_adt_messages(tmp_path: Path, start_engine: StartEngine) -> None:
    mllp_route(tmp_path)
    engine = await start_engine()
    ids = [f"FILE-{n}" for n in range(5)]
    text = "\n\n".join(adt(i).decode().replace("\r", "\n") for i in ids)  # an editor's file: LF line ends
    (tmp_path / "adt.hl7").write_text(text, encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        str(MLLP_SEND), "--loose", "-f", str(tmp_path / "adt.hl7"), "-p", str(port_of(engine)), "127.0.0.1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert [f"MSA|AA|{i}" in out.decode() for i in ids] == [True] * 5
    assert control_ids(journaled(engine)) == ids
