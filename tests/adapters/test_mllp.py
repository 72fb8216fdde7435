"""mllp: listener against python-hl7 clients over real sockets on 127.0.0.1: ACKs, framing faults, charsets.

Duplicates, ordering, load, TLS and ``mllp_send`` are in test_mllp_delivery.py;
the sending side is in test_mllp_client.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import sqlalchemy as sa

from esb.journal.schema import messages
from esb.runtime.engine import Engine
from tests.adapters.mllp_support import EB, SB, adt, connect, mllp_route, port_of
from tests.support import StartEngine, wait_for
from transforms.hl7v2 import read_ack

pytestmark = pytest.mark.filterwarnings("error")


def journaled(engine: Engine) -> list[dict[str, Any]]:
    with engine.journal.engine.connect() as conn:
        rows = conn.execute(sa.select(messages).order_by(messages.c.received_at)).mappings().all()
    return [dict(r) for r in rows]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "esb.adapters.mllp" and r.levelno >= logging.WARNING]


async def test_adt_is_acked_aa_after_the_journal_commit(tmp_path: Any, start_engine: StartEngine, db_url: str) -> None:
    mllp_route(tmp_path)
    engine = await start_engine(db_url=db_url)
    async with connect(port_of(engine)) as client:
        await client.send(adt("MSG-1"))
        first = await client.receive()
        ack = read_ack(first)
        second = await client.call(adt("MSG-2", trigger="A08"))  # same connection: persistent
    assert (ack.code, ack.control_id, second.code, second.control_id) == ("AA", "MSG-1", "AA", "MSG-2")
    msh = first.split(b"\r")[0].split(b"|")
    assert msh[2:6] == [b"EMPI", b"REGION", b"HIS", b"HOSP"]  # sender and receiver swapped
    assert msh[8] == b"ACK^A01^ACK" and msh[9] not in (b"", b"MSG-1") and msh[11] == b"2.5"
    rows = journaled(engine)
    assert [r["body"] for r in rows] == [adt("MSG-1"), adt("MSG-2", trigger="A08")]
    headers = rows[0]["headers"]
    assert headers["hl7-message-type"] == "ADT^A01" and headers["hl7-trigger"] == "A01"
    assert headers["hl7-control-id"] == "MSG-1" and headers["hl7-version"] == "2.5"
    assert (headers["hl7-sending-application"], headers["hl7-sending-facility"]) == ("HIS", "HOSP")
    assert (headers["hl7-receiving-application"], headers["hl7-receiving-facility"]) == ("EMPI", "REGION")
    assert headers["charset"] == "utf-8" and headers["mllp-peer"].startswith("127.0.0.1:")


async def test_application_ack_reports_a_failed_route_as_ae_with_err(
    tmp_path: Any, start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    mllp_route(tmp_path, "ack=application", "- transform: {python: tests.adapters.mllp_support:boom}")
    engine = await start_engine()
    async with connect(port_of(engine)) as client:
        await client.send(adt("F-1"))
        raw = await client.receive()
    ack = read_ack(raw)
    assert (ack.code, ack.control_id, ack.error_code) == ("AE", "F-1", "207")
    err = raw.split(b"\r")[2].split(b"|")
    assert err[0] == b"ERR" and err[3] == b"207^Application internal error^HL70357" and err[4] == b"E"
    assert b"RuntimeError" in err[8] and b"exploded" not in raw  # the class, not the text
    assert journaled(engine)[0]["status"] == "failed"
    assert not any("Zhang" in r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG)


async def test_hl7_error_and_on_error_ack_choose_the_answer(tmp_path: Any, start_engine: StartEngine) -> None:
    mllp_route(tmp_path, "ack=application", "- transform: {python: tests.adapters.mllp_support:reject_pid}")
    mllp_route(
        tmp_path,
        "ack=application",
        "- transform: {python: tests.adapters.mllp_support:boom}",
        on_error="- ack: {code: AR, text: refused by policy, error: '204'}\n- to: dead-letter:policy",
        rid="policy",
    )
    mllp_route(tmp_path, "ack=application", '- validate: {hl7v2: "ADT^A04"}', rid="typed")
    engine = await start_engine()
    async with connect(port_of(engine)) as client:
        await client.send(adt("H-1"))
        raw = await client.receive()
    err = raw.split(b"\r")[2].split(b"|")
    assert read_ack(raw).code == "AR"
    assert err[2] == b"PID^1^3^1^4" and err[3] == b"101^Required field missing^HL70357"
    assert err[8] == b"PID-3 needs an assigning authority"
    async with connect(port_of(engine, "policy")) as client:
        ack = await client.call(adt("P-1"))
    assert (ack.code, ack.error_code, ack.text) == ("AR", "204", "refused by policy")
    async with connect(port_of(engine, "typed")) as client:
        ack = await client.call(adt("T-1"))
    assert (ack.code, ack.error_code) == ("AR", "200")
    assert "ADT^A01 is not accepted here" in ack.text


async def test_a_reply_built_by_the_route_is_sent_as_the_ack(tmp_path: Any, start_engine: StartEngine) -> None:
    mllp_route(tmp_path, "ack=application", "- transform: {python: tests.adapters.mllp_support:service_reply}")
    engine = await start_engine()
    async with connect(port_of(engine)) as client:
        await client.send(adt("S-1"))
        raw = await client.receive()
    assert raw.startswith(b"MSH|^~\\&|EMPI|REGION|HIS|HOSP|") and b"|R-S-1|" in raw
    assert read_ack(raw).text == "Zhang^San"


async def test_a_frame_without_msh_gets_ar_and_is_not_journaled(tmp_path: Any, start_engine: StartEngine) -> None:
    mllp_route(tmp_path)
    engine = await start_engine()
    async with connect(port_of(engine)) as client:
        await client.send(b"PID|1||123\r")
        raw = await client.receive()
        missing_id = await client.call(adt(""))
        still_fine = await client.call(adt("OK-1"))
    ack = read_ack(raw)
    assert (ack.code, ack.error_code, ack.control_id) == ("AR", "100", "")
    assert raw.startswith(b"MSH|^~\\&|") and b"ACK" in raw.split(b"\r")[0]
    assert (missing_id.code, missing_id.error_code) == ("AR", "101")
    assert still_fine.code == "AA"
    assert [r["headers"]["hl7-control-id"] for r in journaled(engine)] == ["OK-1"]


async def test_malformed_frames_are_logged_and_the_connection_survives(
    tmp_path: Any, start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    mllp_route(tmp_path)
    engine = await start_engine()
    async with connect(port_of(engine)) as client:
        await client.send_raw(b"GARBAGE" + SB + adt("G-1") + EB + b"\r")
        after_garbage = await client.ack()
        await client.send_raw(SB + adt("CUT-1") + SB + adt("G-2") + EB + b"\r")  # first frame lost its end block
        after_cut = await client.ack()
        await client.send_raw(b"\r\n")  # blank between frames: tolerated quietly
        tolerated = await client.call(adt("G-3"))
        peer = journaled(engine)[0]["headers"]["mllp-peer"]
    assert (after_garbage.control_id, after_cut.control_id, tolerated.control_id) == ("G-1", "G-2", "G-3")
    warnings = warnings_of(caplog)
    assert any(f"7 bytes outside MLLP framing from {peer}" in w for w in warnings)
    assert any(f"frame from {peer} cut short by the next start block" in w for w in warnings)
    assert len(warnings) == 2
    async with connect(port_of(engine)) as client:
        await client.send_raw(SB + b"MSH|^~\\&|HIS|HOSP|E|R|2026||ADT^A01|X|P|2.5")
    async with connect(port_of(engine)) as client:  # a new connection after one that died mid-frame
        assert (await client.call(adt("G-4"))).code == "AA"
    await wait_for(lambda: any("in the middle of a frame" in w for w in warnings_of(caplog)), 5, "mid-frame warning")
    assert [r["headers"]["hl7-control-id"] for r in journaled(engine)] == ["G-1", "G-2", "G-3", "G-4"]


async def test_oversize_frame_is_answered_ar_and_logged(
    tmp_path: Any, start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    mllp_route(tmp_path, "max_size=400")
    engine = await start_engine()
    big = adt("BIG-1").replace(b"PV1|1|O", b"NTE|1||" + b"x" * 2000)
    async with connect(port_of(engine)) as client:
        ack = await client.call(big)
        small = await client.call(adt("SMALL-1"))
    assert (ack.code, ack.control_id, ack.error_code) == ("AR", "BIG-1", "207")
    assert "larger than the 400 bytes" in ack.text
    assert small.code == "AA"
    assert [r["headers"]["hl7-control-id"] for r in journaled(engine)] == ["SMALL-1"]
    assert any("is over max_size 400; answered AR" in w and "127.0.0.1:" in w for w in warnings_of(caplog))


async def test_idle_and_read_timeouts_close_the_connection(
    tmp_path: Any, start_engine: StartEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="esb.adapters.mllp")
    mllp_route(tmp_path, "idle_timeout=300ms&read_timeout=200ms")
    engine = await start_engine()
    async with connect(port_of(engine)) as client:
        assert (await client.call(adt("I-1"))).code == "AA"
        assert await client.closed_by_peer(5)
    assert any("idle for 0.3s; closing" in r.getMessage() for r in caplog.records)
    async with connect(port_of(engine)) as client:
        await client.send_raw(SB + adt("I-2")[:30])
        assert await client.closed_by_peer(5)
    assert any("not finished within 0.2s (30 bytes so far)" in w for w in warnings_of(caplog))
    assert len(journaled(engine)) == 1


async def test_enhanced_mode_honours_the_accept_ack_condition(tmp_path: Any, start_engine: StartEngine) -> None:
    mllp_route(tmp_path)
    engine = await start_engine()
    async with connect(port_of(engine)) as client:
        await client.send(adt("E-1", accept="NE", application="AL"))  # no accept ACK wanted
        await client.send(adt("E-2", accept="ER", application="AL"))  # only on errors
        await client.send(adt("E-3", accept="AL", application="NE"))
        ack = await client.ack()
        await client.send(adt("", accept="ER"))
        refused = await client.ack()
    assert (ack.code, ack.control_id) == ("CA", "E-3")
    assert (refused.code, refused.error_code) == ("CR", "101")
    await wait_for(lambda: len(journaled(engine)) == 3, what="three messages journaled")


async def test_charsets_gb18030_and_latin1_round_trip_names(tmp_path: Any, start_engine: StartEngine) -> None:
    reply = "- transform: {python: tests.adapters.mllp_support:service_reply}"
    mllp_route(tmp_path, "ack=application", reply)
    mllp_route(tmp_path, "ack=application&charset=ISO-8859-1", reply, rid="latin")
    engine = await start_engine()
    gb = adt("CN-1", family="张", given="三", charset="GB 18030-2000", codec="gb18030")
    async with connect(port_of(engine)) as client:
        await client.send(gb)
        raw = await client.receive()
        await client.send(adt("CN-2", family="张", given="三", codec="gb18030"))  # no MSH-18: route says UTF-8
        wrong = read_ack(await client.receive())
    assert read_ack(raw, "utf-8").text == "张^三"  # MSH-18 of the ACK names GB 18030 again
    assert raw.split(b"\r")[0].endswith(b"|GB 18030-2000") and "张".encode("gb18030") in raw
    assert (wrong.code, wrong.error_code) == ("AR", "102")
    async with connect(port_of(engine, "latin")) as client:
        await client.send(adt("DE-1", family="Müller", given="Jürgen", codec="iso-8859-1"))
        latin = read_ack(await client.receive(), "iso-8859-1")
    assert latin.text == "Müller^Jürgen"
    rows = {r["headers"]["hl7-control-id"]: r for r in journaled(engine)}
    assert rows["CN-1"]["headers"]["charset"] == "gb18030" and rows["CN-1"]["body"] == gb
    assert rows["DE-1"]["headers"]["charset"] == "iso-8859-1"
    assert set(rows) == {"CN-1", "DE-1"}


async def test_engine_stop_closes_open_connections(tmp_path: Any, start_engine: StartEngine) -> None:
    mllp_route(tmp_path)
    engine = await start_engine()
    async with connect(port_of(engine)) as client:
        assert (await client.call(adt("Z-1"))).code == "AA"
        stopping = asyncio.create_task(engine.stop())
        assert await client.closed_by_peer(5)
        await stopping


async def test_a_message_the_journal_cannot_take_is_answered_ae_and_can_be_sent_again(
    tmp_path: Any, start_engine: StartEngine
) -> None:
    mllp_route(tmp_path)
    engine = await start_engine()

    def rename(old: str, new: str) -> None:
        with engine.journal.engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))

    async with connect(port_of(engine)) as client:
        rename(messages.name, "away")
        refused = await client.call(adt("J-1"))
        rename("away", messages.name)
        rename("esb_mllp_dedup", "gone")  # the duplicate table down: the same answer, no crash
        broken = await client.call(adt("J-1"))
        rename("gone", "esb_mllp_dedup")
        accepted = await client.call(adt("J-1"))  # the first refusal released its claim
    assert (refused.code, refused.error_code, refused.control_id) == ("AE", "207", "J-1")
    assert "send it again later" in refused.text and (broken.code, broken.control_id) == ("AE", "J-1")
    assert accepted.code == "AA" and control_ids_of(engine) == ["J-1"]


def control_ids_of(engine: Engine) -> list[str]:
    return [r["headers"]["hl7-control-id"] for r in journaled(engine)]
