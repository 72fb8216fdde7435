"""The Imaging Document Source on a running engine: its publisher on study completion, its RAD-69 side.

``await attach(context)`` builds both from the services already on the bus —
``dicom-archive`` (the archive), ``xds-repository`` (ITI-41, in process) and,
when the registry runs on this bus too, ``xds-registry`` (ITI-18, to find the
entry a new manifest replaces) — and, unless ``xdsi.enabled`` is off in
config/dicom.yaml, adds the publisher to the archive's ``on_complete`` hooks,
so each study the ``complete-studies`` operation reports gets its KOS. The
RAD-69 side is returned for the SOAP route to call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from profiles.empi.config import load_empi_config
from profiles.xdsi.config import XdsiConfig, engine_config
from profiles.xdsi.publisher import Publisher
from profiles.xdsi.rad69 import ImagingDocumentSource


@dataclass(frozen=True)
class ImagingSource:
    config: XdsiConfig
    publisher: Publisher
    rad69: ImagingDocumentSource


async def attach(context: Any) -> ImagingSource:
    """Build the publisher and RAD-69 source on ``context`` and hook publishing to study completion."""
    archive_service = context.service("dicom-archive")
    repository_service = context.service("xds-repository")
    await archive_service.start()
    await repository_service.start()
    query = None
    if not repository_service.config.registry_url:
        registry_service = context.service("xds-registry")
        await registry_service.start()
        query = registry_service.queries.run
    config = engine_config(context.settings, archive_service.config, repository_service.config)
    archive = archive_service.archive
    publisher = Publisher(
        context.journal.engine,
        archive,
        repository_service.repository,
        config,
        master_oid=await asyncio.to_thread(lambda: load_empi_config().master_domain.universal_id),
        query=query,
    )
    if archive_service.config.xdsi_enabled:

        def publish(study_uid: str) -> None:
            publisher.publish(study_uid)

        archive_service.on_complete.append(publish)
    return ImagingSource(config, publisher, ImagingDocumentSource(archive, config))
