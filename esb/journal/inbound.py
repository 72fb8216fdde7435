"""Inbound duplicate control: a message seen twice is taken once, on any node.

A broker redelivers a frame whose ACK was lost when it restarted; a staging
row is read again when the node that took it died before marking it done. The
consumer names each message by a key that stays the same across those
repeats (the sender's message id, the row's primary key) and the journal
records (route, key) in the transaction that journals the message: exactly
one copy commits, on whichever node, and the others learn which message took
it. The MLLP adapter keeps its own table (:mod:`adapters.mllp.dedup`) because
it must also answer a retransmission with the first ACK.

A key whose message *failed* may be taken again: that is how a row rejected
for bad data is re-run after the mapping was fixed. A key whose message was
pruned still counts as taken; keys are pruned by age, not with messages, so a
route that keeps no messages (``store: none``) still drops its duplicates.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from esb.journal.schema import inbound_keys, messages

#: the longest key stored as it is; longer ones are stored as their SHA-256
KEY_LENGTH = 200

_FIND = (
    select(inbound_keys.c.message_id)
    .where(inbound_keys.c.route_id == bindparam("b_route"), inbound_keys.c.key == bindparam("b_key"))
    .with_for_update()
)
_STATUS = select(messages.c.status).where(messages.c.id == bindparam("b_id"))
_INSERT = insert(inbound_keys)
_RETAKE = (
    update(inbound_keys)
    .where(inbound_keys.c.route_id == bindparam("b_route"), inbound_keys.c.key == bindparam("b_key"))
    .values(message_id=bindparam("b_message"), created_at=bindparam("b_now"))
)


def stored_key(key: str) -> str:
    """``key`` as stored: itself when short enough, else a digest (same key, same digest)."""
    if len(key) <= KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def take_key(conn: Connection, route_id: str, key: str, message_id: str, now: dt.datetime) -> str | None:
    """Record ``message_id`` as the message of ``key``; the message that holds it already, if one does.

    Runs in the accepting transaction. The key row is locked while it is
    read, so two nodes re-taking a failed key cannot both win; two nodes
    inserting a new key at once meet on the primary key (IntegrityError for
    the second, whose caller runs the whole transaction again and then finds
    the first's row).
    """
    params = {"b_route": route_id[:200], "b_key": stored_key(key)}
    held = conn.execute(_FIND, params).scalar()
    if held is None:
        conn.execute(
            _INSERT,
            {"route_id": params["b_route"], "key": params["b_key"], "message_id": message_id, "created_at": now},
        )
        return None
    status = conn.execute(_STATUS, {"b_id": held}).scalar()
    if status == "failed":
        conn.execute(_RETAKE, {**params, "b_message": message_id, "b_now": now})
        return None
    return str(held)


def prune_keys(conn: Connection, before: dt.datetime) -> int:
    """Forget keys recorded before ``before`` (the journal's retention)."""
    return int(conn.execute(delete(inbound_keys).where(inbound_keys.c.created_at < before)).rowcount)
