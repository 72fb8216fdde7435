"""Pruning the journal: finished messages leave after their retention, with their deliveries.

Apart from :mod:`esb.journal.store` because it runs on its own schedule (the
engine's prune loop, ``esb messages prune``) and touches every journal table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, delete, or_, select

from esb.journal.inbound import prune_keys
from esb.journal.schema import attempts, deliveries, messages, timer_ticks
from esb.journal.spool import discard_attachments, lists_attachments

#: message states nothing more happens to
FINAL_MESSAGE_STATES = ("processed", "filtered", "failed")
#: deliveries that keep their message from being pruned
OPEN_DELIVERY_STATES = ("pending", "inflight", "dead")


def prune_finished(
    engine: Engine,
    now: dt.datetime,
    spool_root: Path | None,
    older_than: dt.timedelta | None,
    *,
    route_id: str | None = None,
    exclude_routes: Sequence[str] = (),
) -> int:
    """Remove finished messages: 'none' mode at once, others after retention.

    Works in batches; returns how many messages went (0 when nothing is left).
    ``route_id`` limits pruning to one route (its own ``retention``);
    ``exclude_routes`` spares the routes that have one.
    The deletes re-check for open deliveries, so a delivery queued on an old
    message meanwhile (``esb messages replay --to``) keeps it and is kept.
    """
    done = messages.c.status.in_(FINAL_MESSAGE_STATES)
    open_deliveries = (
        select(deliveries.c.id)
        .where(deliveries.c.message_id == messages.c.id, deliveries.c.status.in_(OPEN_DELIVERY_STATES))
        .exists()
    )
    expired = messages.c.store_mode == "none"
    if older_than is not None:
        expired = or_(expired, messages.c.updated_at < now - older_than)
    if route_id is not None:
        expired = and_(expired, messages.c.route_id == route_id)
    if exclude_routes:
        expired = and_(expired, messages.c.route_id.not_in(exclude_routes))
    with engine.begin() as conn:
        conn.execute(delete(timer_ticks).where(timer_ticks.c.tick < now - dt.timedelta(days=1)))
        if older_than is not None and route_id is None:
            prune_keys(conn, now - older_than)
        ids = [r.id for r in conn.execute(select(messages.c.id).where(done, expired, ~open_deliveries).limit(5000))]
        if not ids:
            return 0
        closed = and_(deliveries.c.message_id.in_(ids), deliveries.c.status.not_in(OPEN_DELIVERY_STATES))
        conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(select(deliveries.c.id).where(closed))))
        conn.execute(delete(deliveries).where(closed))
        listed: dict[str, Any] = {}
        if spool_root is not None:
            found = conn.execute(select(messages.c.id, messages.c.headers).where(messages.c.id.in_(ids)))
            listed = {r.id: r.headers for r in found if lists_attachments(r.headers)}
        count = int(conn.execute(delete(messages).where(messages.c.id.in_(ids), ~open_deliveries)).rowcount)
        if listed:  # a message that got a new delivery meanwhile was kept, and keeps its files
            kept = {r.id for r in conn.execute(select(messages.c.id).where(messages.c.id.in_(list(listed))))}
            listed = {k: v for k, v in listed.items() if k not in kept}
    discard_attachments(listed.values(), spool_root)
    return count
