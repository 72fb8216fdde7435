"""service:empi end to end inside a real engine: ITI-8 feeds, ITI-9 PIX, ITI-21 PDQ,
listeners' deliveries, with the real standardizer and matching model, both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from esb.errors import Hl7Error
from esb.exchange import Exchange
from esb.journal import admin
from esb.runtime.engine import Engine
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for
from transforms.hl7v2.codec import V2Message

ROUTES = {
    "hl7": """
        route:
          id: hl7
          from: seda:hl7
          steps:
            - choice:
                - when: {python: "tests.empi.test_service:is_adt"}
                  steps:
                    - to: service:empi/feed
                - when: {python: "tests.empi.test_service:is_pix"}
                  steps:
                    - to: service:empi/pix-query
                - otherwise:
                    - to: service:empi/pdq-query
    """,
}


def is_adt(exchange: Exchange) -> bool:
    return b"|ADT^" in exchange.body


def is_pix(exchange: Exchange) -> bool:
    return b"|QBP^Q23" in exchange.body


def msh(kind: str, control: str, sender: str = "HIS1", stamp: str = "20261129080000") -> str:
    return f"MSH|^~\\&|{sender}|HOSP|EMPI|REGION|{stamp}||{kind}|{control}|P|2.5|||||||UNICODE UTF-8"


def adt(
    trigger: str, control: str, pid: str, *, sender: str = "HIS1", extra: str = "", stamp: str = "20261129080000"
) -> bytes:
    segments = [msh(f"ADT^{trigger}^ADT_A01", control, sender, stamp), f"EVN|{trigger}|{stamp}", pid]
    if extra:
        segments.append(extra)
    return "\r".join(segments).encode("utf-8")


ZHANG_HIS = "PID|1||H100^^^HIS1&1.2.3.1&ISO^MR||张^三丰||19800506|M|||||13812345678||||||110101198005060014"
ZHANG_RIS = "PID|1||R900^^^RIS1&1.2.3.2&ISO^MR||ZHANG^SANFENG||19800506|M|||||+86 138 1234 5678"
LI_HIS = "PID|1||H200^^^HIS1&1.2.3.1&ISO^MR||李^四||19900101|F"


@pytest.fixture
def listeners_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    out = tmp_path / "events"
    (tmp_path / "listeners.yaml").write_text(
        "listeners:\n"
        f"  - {{name: files, uri: 'file:{out}', format: json}}\n"
        f"  - {{name: pix-consumer, uri: 'file:{tmp_path / 'a31'}', format: iti10, events: [registered, merged]}}\n"
    )
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "listeners.yaml"))
    yield out


async def send(engine: Engine, body: bytes) -> Exchange:
    outcome = await engine.context.local_endpoints["seda:hl7"](Exchange(body=body), True)
    if outcome.status != "processed":
        raise outcome.error or AssertionError(outcome.status)
    assert outcome.exchange is not None
    return outcome.exchange


def segments(body: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in body.decode("utf-8").split("\r"):
        if line:
            out.setdefault(line[:3], []).append(line)
    return out


async def test_feed_links_hanzi_and_pinyin_records_and_pix_answers(
    tmp_path: Path, start_engine: StartEngine, db_url: str, listeners_file: Path
) -> None:
    write_routes(tmp_path / "routes", ROUTES)
    engine = await start_engine(db_url=db_url)
    first = await send(engine, adt("A01", "c1", ZHANG_HIS))
    second = await send(engine, adt("A04", "c2", ZHANG_RIS, sender="RIS1"))
    assert first.headers["empi-person"] == second.headers["empi-person"] != ""
    person = first.headers["empi-person"]

    rsp = await send(
        engine, (msh("QBP^Q23^QBP_Q21", "q1") + "\rQPD|IHE PIX Query|t1|H100^^^HIS1&1.2.3.1&ISO\rRCP|I").encode()
    )
    parts = segments(rsp.body)
    assert parts["MSA"][0].startswith("MSA|AA|q1")
    assert parts["QAK"][0] == "QAK|t1|OK"
    pid3 = parts["PID"][0].split("|")[3]
    assert "R900^^^RIS1&1.2.3.2&ISO" in pid3 and f"{person}^^^EMPI" in pid3 and "H100" not in pid3

    unknown = await send(
        engine, (msh("QBP^Q23^QBP_Q21", "q2") + "\rQPD|IHE PIX Query|t2|NOPE^^^HIS1&1.2.3.1&ISO\rRCP|I").encode()
    )
    assert segments(unknown.body)["MSA"][0].startswith("MSA|AE|q2")
    assert "204" in segments(unknown.body)["ERR"][0]

    db = engine.journal.engine
    await wait_for(lambda: len(list(listeners_file.glob("*"))) == 2, what="two JSON events")
    events = sorted(json.loads(p.read_text())["event"] for p in listeners_file.glob("*"))
    assert events == ["registered", "registered"]
    await wait_for(lambda: len(list((tmp_path / "a31").glob("*"))) == 2, what="two A31 notifications")
    a31 = sorted((tmp_path / "a31").glob("*"))
    assert all("ADT^A31" in p.read_text() for p in a31)
    dest = f"file:{listeners_file}"
    assert {d["status"] for d in admin.deliveries_to(db, dest)} == {"delivered"}


async def test_pdq_finds_by_pinyin_wildcard_and_continues(
    tmp_path: Path, start_engine: StartEngine, db_url: str, listeners_file: Path
) -> None:
    write_routes(tmp_path / "routes", ROUTES)
    engine = await start_engine(db_url=db_url)
    await send(engine, adt("A01", "c1", ZHANG_HIS))
    await send(engine, adt("A01", "c2", LI_HIS))
    await send(engine, adt("A01", "c3", "PID|1||H300^^^HIS1&1.2.3.1&ISO^MR||张^伟||19700101|M"))
    query = msh("QBP^Q22^QBP_Q21", "p1") + "\rQPD|IHE PDQ Query|p1|@PID.5.1.1^ZHANG*\rRCP|I|1^RD"
    rsp = await send(engine, query.encode())
    parts = segments(rsp.body)
    assert parts["QAK"][0].startswith("QAK|p1|OK")
    assert len(parts["PID"]) == 1 and "DSC" in parts
    pointer = parts["DSC"][0].split("|")[1]
    more = await send(engine, (query + f"\rDSC|{pointer}|I").encode())
    parts2 = segments(more.body)
    assert len(parts2["PID"]) == 1 and "DSC" not in parts2
    assert {parts["PID"][0].split("|")[5][:1], parts2["PID"][0].split("|")[5][:1]} == {"张"}
    by_hanzi = await send(
        engine, (msh("QBP^Q22^QBP_Q21", "p2") + "\rQPD|IHE PDQ Query|p2|@PID.5.1.1^李\rRCP|I").encode()
    )
    assert len(segments(by_hanzi.body)["PID"]) == 1
    partial = msh("QBP^Q22^QBP_Q21", "p3") + "\rQPD|IHE PDQ Query|p3|@PID.5.1.1^zh*~@PID.5.2^San*\rRCP|I"
    found = segments((await send(engine, partial.encode())).body)["PID"]
    assert len(found) == 1 and "H100" in found[0]
    hanzi_prefix = msh("QBP^Q22^QBP_Q21", "p4") + "\rQPD|IHE PDQ Query|p4|@PID.5.1.1^张*\rRCP|I"
    assert len(segments((await send(engine, hanzi_prefix.encode())).body)["PID"]) == 2


async def test_merge_then_unknown_prior_and_refusals(
    tmp_path: Path, start_engine: StartEngine, db_url: str, listeners_file: Path
) -> None:
    write_routes(tmp_path / "routes", ROUTES)
    engine = await start_engine(db_url=db_url)
    await send(engine, adt("A01", "c1", ZHANG_HIS))
    await send(engine, adt("A01", "c2", LI_HIS))
    merged = await send(
        engine,
        adt("A40", "c3", ZHANG_HIS, extra="MRG|H200^^^HIS1&1.2.3.1&ISO", stamp="20261129090000"),
    )
    assert merged.headers["empi-event"] == "updated,merged"
    rsp = await send(
        engine, (msh("QBP^Q23^QBP_Q21", "q3") + "\rQPD|IHE PIX Query|t3|H200^^^HIS1&1.2.3.1&ISO\rRCP|I").encode()
    )
    assert segments(rsp.body)["MSA"][0].startswith("MSA|AE")
    with pytest.raises(Hl7Error) as refused:
        await send(engine, adt("A40", "c4", ZHANG_HIS, extra="MRG|NOBODY^^^HIS1&1.2.3.1&ISO", stamp="20261129100000"))
    assert refused.value.error_code == "204" and refused.value.location.startswith("MRG")
    with pytest.raises(Hl7Error) as stale:
        await send(engine, adt("A08", "c5", ZHANG_HIS, stamp="20200101000000"))
    assert stale.value.error_code == "207"
    V2Message(merged.body, None)  # the feed leaves the ADT as the message


async def test_twelve_listeners_each_get_each_event(
    tmp_path: Path, start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A1.14: at least ten listeners at once, added by configuration alone."""
    lines = ["listeners:"]
    for number in range(12):
        events = "[registered, updated]" if number % 2 else "[registered]"
        lines.append(f"  - {{name: l{number}, uri: 'file:{tmp_path}/out{number}', format: json, events: {events}}}")
    (tmp_path / "listeners.yaml").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("ESB_EMPI_LISTENERS", str(tmp_path / "listeners.yaml"))
    write_routes(tmp_path / "routes", ROUTES)
    engine = await start_engine()
    await send(engine, adt("A01", "c1", LI_HIS))
    await send(engine, adt("A08", "c2", LI_HIS, stamp="20261129090000"))

    def delivered() -> list[int]:
        return [len(list((tmp_path / f"out{n}").glob("*"))) for n in range(12)]

    await wait_for(lambda: delivered() == [1, 2] * 6, what="each listener's events")
