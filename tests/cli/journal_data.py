"""A small journal written through the engine's own Journal API, with a controlled clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from esb.exchange import Exchange
from esb.journal import Journal, NewDelivery, utcnow
from esb.routes.model import RetryPolicy

BODY_ADT = b"MSH|^~\\&|HIS|H1|EMPI|R|||ADT^A01|1|P|2.5\rPID|||42||Smith^John\r"
#: not valid UTF-8, so --raw must hand over bytes, not text
BODY_BINARY = b"\x00\xffDICM\x80 Doe^Jane"


@dataclass
class Seeded:
    old: str  # route adt, processed 3 h ago; one delivery delivered on the 2nd attempt
    recent: str  # route adt, failed 10 min ago; one dead delivery
    newest: str  # route orm, processed now; store mode metadata (no body kept)
    delivery: str
    dead: str


def seed(db_url: str) -> Seeded:
    now = utcnow()
    clock = [now - dt.timedelta(hours=3)]
    journal = Journal(db_url, node_id="seed-node", clock=lambda: clock[0])
    journal.upgrade()
    try:
        old = journal.accept(
            Exchange(body=BODY_ADT, headers={"hl7-type": "ADT^A01"}),
            route_id="adt",
            source="mllp://h1",
            store_mode="full",
            claim=True,
        )
        quick = RetryPolicy(max_attempts=3, delay=0.0)
        delivery = NewDelivery("seda:empi", BODY_ADT, {"hl7-type": "ADT^A01"}, quick)
        journal.complete(old, status="processed", new_deliveries=[delivery])
        (first,) = journal.claim_deliveries(10)
        assert journal.record_attempt(first, error="DeliveryError: no route consumes seda:empi") == "pending"
        (second,) = journal.claim_deliveries(10)
        assert journal.record_attempt(second, error=None) == "delivered"

        clock[0] = now - dt.timedelta(minutes=10)
        recent = journal.accept(
            Exchange(body=BODY_BINARY, headers={"charset": "latin-1"}),
            route_id="adt",
            source="mllp://h2",
            store_mode="full",
            claim=True,
        )
        doomed = NewDelivery("seda:pacs", BODY_BINARY, {}, RetryPolicy(max_attempts=1))
        journal.complete(recent, status="failed", error="ValidationError: PID-3 missing", new_deliveries=[doomed])
        (third,) = journal.claim_deliveries(10)
        assert journal.record_attempt(third, error="DeliveryError: refused") == "dead"

        clock[0] = now
        newest = journal.accept(
            Exchange(body=b"ORC|NW|123"), route_id="orm", source="http://h3", store_mode="metadata", claim=True
        )
        journal.complete(newest, status="processed")
    finally:
        journal.close()
    return Seeded(old, recent, newest, delivery.id, doomed.id)
