"""The shipped HL7 route over a real MLLP socket: ITI-8 feeds, ITI-9 PIX, ITI-21 PDQ,
a merge later undone, strict domains and a wrong message type, each with its ACK/RSP."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hl7.mllp import start_hl7_server

from esb.cli import main_group
from esb.journal import admin
from tests.adapters.mllp_support import connect, port_of
from tests.support import StartEngine, wait_for

ROOT = Path(__file__).resolve().parents[2]
HIS = "HIS1&1.2.3.1&ISO"


def msh(kind: str, control: str, stamp: str = "20261129080000") -> str:
    return f"MSH|^~\\&|HIS1|HOSP|EMPI|REGION|{stamp}||{kind}|{control}|P|2.5|||||||UNICODE UTF-8"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def adt(trigger: str, control: str, pid: str, extra: str = "", stamp: str = "20261129080000") -> bytes:
    lines = [msh(f"ADT^{trigger}^ADT_A01", control, stamp), f"EVN|{trigger}|{stamp}", pid, *([extra] if extra else [])]
    return "\r".join(lines).encode()


def pix(control: str, value: str, domain: str = HIS) -> bytes:
    return f"{msh('QBP^Q23^QBP_Q21', control)}\rQPD|IHE PIX Query|{control}|{value}^^^{domain}\rRCP|I".encode()


def fields(reply: bytes, segment: str) -> list[str]:
    for line in reply.decode().split("\r"):
        if line.startswith(segment + "|"):
            return line.split("|")
    raise AssertionError(f"no {segment} in {reply!r}")


@pytest.fixture
def hl7_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    routes = tmp_path / "routes"
    routes.mkdir()
    shutil.copy(ROOT / "routes" / "hl7-in.yaml", routes)
    monkeypatch.setenv("ESB_MLLP_PORT", "0")
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "no-listeners.yaml"))
    return routes


async def test_feed_query_merge_and_unmerge_over_mllp(
    hl7_route: Path, start_engine: StartEngine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = await start_engine(db_url=db_url)
    port = port_of(engine, "hl7-in")
    async with connect(port) as client:
        ack = await client.call(adt("A01", "m1", f"PID|1||H1^^^{HIS}^MR||王^小明||19850303|M|||||13900001111"))
        assert ack.code == "AA" and ack.control_id == "m1"
        ack = await client.call(adt("A01", "m2", f"PID|1||H2^^^{HIS}^MR||王^晓明||19850303|M"))
        assert ack.code == "AA"
        await client.send(pix("q1", "H1"))
        rsp = await client.receive()
        assert fields(rsp, "MSA")[1:3] == ["AA", "q1"] and fields(rsp, "QAK")[2] == "OK"

        merged = await client.call(
            adt("A40", "m3", f"PID|1||H1^^^{HIS}^MR||王^小明||19850303|M", f"MRG|H2^^^{HIS}", "20261129090000")
        )
        assert merged.code == "AA"
        await client.send(pix("q2", "H2"))
        assert fields(await client.receive(), "MSA")[1] == "AE"  # the prior ID is retired

        monkeypatch.setenv("ESB_DB_URL", db_url)
        result = CliRunner().invoke(main_group, ["empi", "unmerge", f"H2^^^{HIS}"])
        assert result.exit_code == 0, result.output
        await client.send(pix("q3", "H2"))
        again = await client.receive()
        assert fields(again, "MSA")[1] == "AA" and fields(again, "QAK")[2] == "OK"

        missing = await client.call(
            adt("A40", "m4", f"PID|1||H1^^^{HIS}^MR||王^小明", f"MRG|NOPE^^^{HIS}", "20261129100000")
        )
        assert missing.code == "AE" and missing.error_code == "204"

        await client.send(
            f"{msh('QBP^Q22^QBP_Q21', 'p1')}\rQPD|IHE PDQ Query|p1|@PID.5.1.1^王~@PID.7^19850303\rRCP|I".encode()
        )
        pdq = await client.receive()
        assert fields(pdq, "QAK")[2] == "OK"
        assert pdq.decode().count("\rPID|") == 2

        wrong = await client.call(f"{msh('ORU^R01^ORU_R01', 'x1')}\rPID|1||H1^^^{HIS}".encode())
        assert wrong.code == "AR"


async def test_strict_domains_refuse_unknown_authorities(
    hl7_route: Path, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESB_EMPI_STRICT_DOMAINS", "true")
    engine = await start_engine()
    async with connect(port_of(engine, "hl7-in")) as client:
        ack = await client.call(adt("A01", "s1", "PID|1||Z1^^^NEWHIS&9.9.9&ISO^MR||赵^六||19700101|F"))
        assert ack.code == "AE" and ack.error_code == "204"


async def test_pix_unknown_patient_can_answer_aa_nf(
    hl7_route: Path, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IHE TF case 3 answers AE (tested above); a deployment may choose AA with NF instead."""
    monkeypatch.setenv("ESB_EMPI_PIX_UNKNOWN_PATIENT", "nf")
    engine = await start_engine()
    async with connect(port_of(engine, "hl7-in")) as client:
        assert (await client.call(adt("A01", "n1", f"PID|1||K1^^^{HIS}^MR||钱^七||19600101|M"))).code == "AA"
        await client.send(pix("q9", "NOBODY"))
        rsp = await client.receive()
        assert fields(rsp, "MSA")[1] == "AA" and fields(rsp, "QAK")[2] == "NF"


class PixConsumer:
    """A subscribed PIX Consumer (ITI-10) on MLLP: ACKs every ADT^A31 and keeps it."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle(self, reader: Any, writer: Any) -> None:
        try:
            await self._serve(reader, writer)
        finally:
            writer.close()

    async def _serve(self, reader: Any, writer: Any) -> None:
        while True:
            try:
                block = await reader.readblock()
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            text = block.decode("utf-8")
            self.received.append(text)
            control = text.split("\r")[0].split("|")[9]
            writer.writeblock(
                f"MSH|^~\\&|RIS|R|EMPI|E|20261129||ACK^A31^ACK|a{control}|P|2.5\rMSA|AA|{control}".encode()
            )
            await writer.drain()


async def test_every_feed_trigger_and_a_late_iti10_consumer_gets_its_backlog(
    hl7_route: Path, start_engine: StartEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    consumer_port = free_port()
    (tmp_path / "listeners.yaml").write_text(
        f"listeners:\n  - {{name: ris-pix, uri: 'mllp://127.0.0.1:{consumer_port}?timeout=2s', format: iti10}}\n"
    )
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "listeners.yaml"))
    engine = await start_engine(db_url=db_url, delivery_poll=0.05)
    a, b = f"PID|1||A1^^^{HIS}^MR||孙^一||19700101|F", f"PID|1||B1^^^{HIS}^MR||周^二||19710202|M"
    async with connect(port_of(engine, "hl7-in")) as client:
        for control, message in [
            ("t1", adt("A04", "t1", a)),
            ("t2", adt("A28", "t2", b)),
            ("t3", adt("A08", "t3", a.replace("孙^一", "孙^壹"), stamp="20261129081000")),
            ("t4", adt("A24", "t4", a, b, "20261129082000")),
            ("t5", adt("A37", "t5", a, b, "20261129083000")),
            ("t6", adt("A29", "t6", b, stamp="20261129084000")),
        ]:
            ack = await client.call(message)
            assert (control, ack.code) == (control, "AA"), ack
        await client.send(pix("q1", "B1"))
        assert fields(await client.receive(), "MSA")[1] == "AE"  # deleted
        await client.send(f"{msh('QCN^J01^QCN_J01', 'c1')}\rQID|p1|IHE PDQ Query".encode())
        assert fields(await client.receive(), "MSA")[1] == "AA"

    db = engine.journal.engine
    destination = f"mllp://127.0.0.1:{consumer_port}?timeout=2s"
    await wait_for(lambda: bool(admin.deliveries_to(db, destination, status="pending")), what="a failed attempt")
    peer = PixConsumer()
    server = await start_hl7_server(peer.handle, "127.0.0.1", consumer_port)
    try:
        await wait_for(lambda: len(peer.received) == 6, timeout=20, what="the backlog of A31 notifications")
        assert all("ADT^A31" in m for m in peer.received)
        assert any("A1^^^HIS1&1.2.3.1&ISO" in m for m in peer.received)
        await wait_for(
            lambda: {d["status"] for d in admin.deliveries_to(db, destination)} == {"delivered"},
            what="every delivery recorded as delivered",
        )
        assert len(admin.deliveries_to(db, destination)) == 6
    finally:
        server.close()
        await server.wait_closed()
