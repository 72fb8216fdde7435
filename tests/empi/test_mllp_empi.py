"""The shipped HL7 route over a real MLLP socket: ITI-8 feeds, ITI-9 PIX, ITI-21 PDQ,
a merge later undone, strict domains and a wrong message type, each with its ACK/RSP."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from esb.cli import main_group
from tests.adapters.mllp_support import connect, port_of
from tests.support import StartEngine

ROOT = Path(__file__).resolve().parents[2]
HIS = "HIS1&1.2.3.1&ISO"


def msh(kind: str, control: str, stamp: str = "20261129080000") -> str:
    return f"MSH|^~\\&|HIS1|HOSP|EMPI|REGION|{stamp}||{kind}|{control}|P|2.5|||||||UNICODE UTF-8"


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
