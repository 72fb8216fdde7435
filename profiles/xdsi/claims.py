"""One publisher at a time per study: a claim row with a lease in ``esb_xdsi_claims``.

Publishing reads the study's last manifest, builds a KOS and submits it; two
publishers doing that at once for one study both find no manifest (or the
same old one) and register two. That happens: a slow tick of the
``dicom-studies`` timer on one node overlaps the next tick on another, and the
retry of studies left ``complete`` meets a fresh completion. The claim is
taken before the last manifest is read and given back after the new one is
recorded, so the second publisher finds the first one's manifest and has
nothing to do.

The claim is a row, not a database lock held across the submission: the
submission runs through the repository and registry in their own
transactions. A node that dies while it holds a claim leaves the row behind;
once its lease has run out, the next publisher takes it over with a
conditional UPDATE, which only one contender wins.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Engine, delete, insert, update
from sqlalchemy.exc import IntegrityError

from esb.journal.store import naive_utc
from profiles.xdsi.schema import claims

#: longer than any one submission takes (an in-process ITI-41 of one KOS: well under a minute)
LEASE = dt.timedelta(minutes=10)


def claim(engine: Engine, study_uid: str, now: dt.datetime, lease: dt.timedelta = LEASE) -> str | None:
    """The claim's owner token when this caller may publish ``study_uid`` now; None while another holds it."""
    owner = uuid.uuid4().hex
    now = naive_utc(now)
    try:
        with engine.begin() as conn:
            conn.execute(insert(claims).values(study_uid=study_uid, owner=owner, lease_until=now + lease))
        return owner
    except IntegrityError:
        pass  # held, or left behind by a publisher that died: take it over only if its lease ran out
    with engine.begin() as conn:
        taken = conn.execute(
            update(claims)
            .where(claims.c.study_uid == study_uid, claims.c.lease_until < now)
            .values(owner=owner, lease_until=now + lease)
        )
    return owner if taken.rowcount == 1 else None


def release(engine: Engine, study_uid: str, owner: str) -> None:
    """Give the claim back (only the caller's own: a claim taken over after its lease stays with its new owner)."""
    with engine.begin() as conn:
        conn.execute(delete(claims).where(claims.c.study_uid == study_uid, claims.c.owner == owner))
