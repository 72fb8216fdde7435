"""The one authorization check every admin operation goes through.

Users, roles and permissions arrive with the security baseline (issue 7); until
then the policy is: the operating-system user running ``esb`` on a machine that
reaches the database is the actor, and ``ESB_ADMIN_DENY`` (comma-separated
permissions, or ``*``) lets a deployment close operations off. Every decision
is logged with the actor, so the later audit trail has the same hook.
"""

from __future__ import annotations

import getpass
import logging
import os

from esb.errors import EsbError

log = logging.getLogger("esb.authz")

#: permission names, one per admin operation family
PERMISSIONS = (
    "empi.read", "empi.write", "empi.merge", "empi.review", "empi.domains",
    "listeners.read", "listeners.resend", "messages.read", "messages.replay", "deadletter.manage",
    "xds.read", "xds.write", "dicom.read", "dicom.collect", "etl.read", "etl.run",
)  # fmt: skip


class PermissionDeniedError(EsbError):
    """The actor lacks the permission; the message names both, never the data."""


def current_actor() -> str:
    return os.environ.get("ESB_ACTOR") or getpass.getuser()


def authorize(permission: str, actor: str | None = None) -> str:
    """Return the actor allowed to do ``permission``, or raise PermissionDeniedError."""
    who = actor or current_actor()
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission '{permission}'")
    denied = {p.strip() for p in os.environ.get("ESB_ADMIN_DENY", "").split(",") if p.strip()}
    if "*" in denied or permission in denied:
        log.warning("denied %s to %s", permission, who)
        raise PermissionDeniedError(f"'{who}' may not {permission}")
    log.info("granted %s to %s", permission, who)
    return who
