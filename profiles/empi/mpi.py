"""The master patient index, assembled: core (feed, matching), lifecycle, queries."""

from __future__ import annotations

from profiles.empi.lifecycle import LifecycleMixin
from profiles.empi.queries import QueriesMixin, SearchHit


class MasterPatientIndex(LifecycleMixin, QueriesMixin):
    """See :mod:`profiles.empi.index` for the concurrency rules every operation follows."""


__all__ = ["MasterPatientIndex", "SearchHit"]
