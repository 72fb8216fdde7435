"""PIX Update Notification ITI-10: the ADT^A31 sent to subscribed consumers."""

from __future__ import annotations

from typing import Any

import hl7

from profiles.empi.model import Domain, Identifier
from profiles.pix import adt_a31
from transforms.hl7v2.adt import parse_feed
from transforms.hl7v2.codec import V2Message

HIS1 = Domain("HIS1", "1.2.156.112.1.1", "ISO")
HIS2 = Domain("HIS2", "1.2.156.112.1.2", "ISO")
EMPI = Domain("EMPI", "1.2.156.112.9999.1.1", "ISO")
IDS = [Identifier("E000042", EMPI), Identifier("H0001", HIS1, "MR"), Identifier("R777", HIS2, "MR")]


def a31(identifiers: list[Identifier], **options: Any) -> str | None:
    return adt_a31(
        identifiers,
        sending_application="EMPI^1.2.156.112.9999^ISO",
        sending_facility="REGION",
        receiving_application="PACS",
        receiving_facility="HOSP2",
        **options,
    )


def test_a31_lists_the_subscribed_domains_identifiers_pseudonymously() -> None:
    text = a31(IDS, domains=[EMPI, Domain("HIS2")], event_time="20240301101500", control_id="N0001")
    assert text is not None
    assert hl7.parse(text).segment("MSH")[9][0][1][0] == "A31"
    msg = V2Message(text)
    assert [s.name for s in msg.segments] == ["MSH", "EVN", "PID", "PV1"]
    msh = msg.segments[0]
    assert (msh.wire(3), msh.wire(5), msh.wire(9), msh.value(10), msh.value(12)) == (
        "EMPI^1.2.156.112.9999^ISO",
        "PACS",
        "ADT^A31^ADT_A05",
        "N0001",
        "2.5",
    )
    assert msh.value(18) == "UNICODE UTF-8"
    assert msg.segments[1].render() == "EVN||20240301101500"
    assert msg.segments[2].render() == (
        "PID|||E000042^^^EMPI&1.2.156.112.9999.1.1&ISO~R777^^^HIS2&1.2.156.112.1.2&ISO^MR||~^^^^^^S"
    )
    assert msg.segments[3].render() == "PV1||N"


def test_a31_reads_back_as_an_update_feed() -> None:
    text = a31(IDS)
    assert text is not None
    event = parse_feed(text)
    assert event.kind == "update" and event.trigger == "A31"
    assert event.record.identifiers == tuple(IDS) and event.record.names == ()
    assert event.sending_system == "EMPI^REGION"


def test_nothing_to_notify_when_no_identifier_is_in_the_consumers_domains() -> None:
    assert a31(IDS, domains=[Domain("HIS9")]) is None
    assert a31([]) is None
