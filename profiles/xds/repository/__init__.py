"""The XDS.b Document Repository: ITI-41 Provide and Register Document Set-b, ITI-43 Retrieve Document Set.

Documents are stored through :class:`esb.storage.BlobStore`; the table
``esb_xds_documents`` (:mod:`.schema`) maps (repositoryUniqueId, uniqueId) to a
blob. :class:`Repository` is the core the ``xds-repository`` service wraps;
:mod:`.sweep` holds the housekeeping after crashes.
"""

from profiles.xds.repository.actor import Register, Repository
from profiles.xds.repository.sweep import Settled, settle, sweep_orphans

__all__ = ["Register", "Repository", "Settled", "settle", "sweep_orphans"]
