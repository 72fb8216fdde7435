"""Journal tables. Alembic migrations in ``migrations/`` create and evolve them.

Timestamps are naive UTC everywhere (every dialect stores those the same way);
nodes keep their clocks in step through the IHE Consistent Time client.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

#: One row per inbound message, committed before the caller gets its reply.
messages = Table(
    "esb_messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("route_id", String(200), nullable=False),
    # received -> processed | filtered | failed ; received rows are (re)run by any node
    Column("status", String(16), nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("correlation_id", String(64)),
    Column("source", String(1000)),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary),
    Column("body_size", Integer, nullable=False),
    Column("store_mode", String(16), nullable=False),
    Column("error", Text),
    Column("replay_of", String(32)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(200)),
    Column("lease_until", DateTime),
    Index("ix_esb_messages_status_lease", "status", "lease_until"),
    Index("ix_esb_messages_route_time", "route_id", "received_at"),
    Index("ix_esb_messages_correlation", "correlation_id"),
)

#: One row per outbound delivery: the durable queue, per destination.
deliveries = Table(
    "esb_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("message_id", String(32), ForeignKey("esb_messages.id"), nullable=False),
    Column("route_id", String(200), nullable=False),
    Column("destination", String(1000), nullable=False),
    # pending -> inflight -> delivered | pending (retry) | dead ; dead -> pending (retry) | dropped
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("delay", Float, nullable=False),
    Column("multiplier", Float, nullable=False),
    Column("max_delay", Float, nullable=False),
    Column("next_attempt_at", DateTime, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("delivered_at", DateTime),
    Column("last_error", Text),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary),
    Column("claimed_by", String(200)),
    Column("lease_until", DateTime),
    Index("ix_esb_deliveries_claim", "status", "next_attempt_at"),
    Index("ix_esb_deliveries_message", "message_id"),
    Index("ix_esb_deliveries_destination", "destination", "status"),
)

#: Every delivery attempt, for the delivery log and `esb messages show`.
attempts = Table(
    "esb_delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(32), ForeignKey("esb_deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("node", String(200)),
    Column("outcome", String(16), nullable=False),
    Column("error", Text),
    Column("duration_ms", Float, nullable=False),
    Index("ix_esb_attempts_delivery", "delivery_id"),
)

#: Timer ticks: the node whose insert wins fires the tick, so N nodes fire once.
timer_ticks = Table(
    "esb_timer_ticks",
    metadata,
    Column("route_id", String(200), nullable=False),
    Column("tick", DateTime, nullable=False),
    Column("node", String(200)),
    UniqueConstraint("route_id", "tick", name="uq_esb_timer_ticks"),
)

#: MLLP duplicate detection: (route, MSH-3, MSH-4, MSH-10) -> the first answer, kept
#: for the route's dedup_window, so a retransmission is ACKed again on any node
#: but processed once. ``correlation_id`` finds the journaled message when the
#: node that took it died before recording its ACK code (``ack_code`` NULL).
mllp_dedup = Table(
    "esb_mllp_dedup",
    metadata,
    Column("route_id", String(200), primary_key=True),
    Column("sending_application", String(250), primary_key=True),
    Column("sending_facility", String(250), primary_key=True),
    Column("control_id", String(200), primary_key=True),
    Column("correlation_id", String(64), nullable=False),
    Column("message_id", String(32)),
    Column("ack_code", String(2)),
    Column("error_code", String(16)),
    Column("ack_text", String(500)),
    Column("received_at", DateTime, nullable=False),
    Index("ix_esb_mllp_dedup_received", "received_at"),
)

#: Inbound duplicate control for consumers that may see a message twice (a broker's
#: redelivery, a staging row read again after a crash): (route, key) -> the message
#: that took it. A key whose message failed may be taken again (a re-run after a
#: fix); others answer "duplicate". Pruned by age, apart from messages, so a route
#: that keeps no messages (store: none) still drops its duplicates.
inbound_keys = Table(
    "esb_inbound_keys",
    metadata,
    Column("route_id", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("message_id", String(32), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_esb_inbound_keys_created", "created_at"),
)
