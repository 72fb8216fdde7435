"""``dicomweb:``: QIDO-RS, WADO-RS, STOW-RS and WADO-URI (PS3.18) on the engine's HTTP hub.

``from: dicomweb://0.0.0.0:8080/dicomweb`` serves every path below
``/dicomweb``. Reads are answered from the archive of service ``archive``
(``context.service(name).archive``, an :class:`profiles.dicom.api.ArchiveApi`);
STOW-RS instances go through the route, one exchange each, exactly as C-STORE
ones from the ``dicom:`` adapter do, so ``to: service:dicom-archive/store``
stores both.

Modules: :mod:`.consumer` (routing, CORS), :mod:`.qido`, :mod:`.wado`
(instances, metadata, frames, bulk data), :mod:`.render` (rendered,
thumbnail), :mod:`.stow`, :mod:`.wadouri`, :mod:`.dicomjson` (headers without
pixel data, DICOM JSON), :mod:`.frames`, :mod:`.transcode`, :mod:`.accept`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.dicomweb.consumer import DicomWebConsumer
from adapters.dicomweb.options import DicomWebOptions
from adapters.http import HttpAdapter
from esb.components import Adapter, Consumer, Endpoint, Handler
from esb.errors import ComponentError
from profiles.dicom.api import ArchiveApi


class DicomWebAdapter(HttpAdapter):
    """Built on ``http:``: same URI shape, same hub, same listen key (lint sees clashes with http: and soap:)."""

    scheme = "dicomweb"
    Options: ClassVar[type[Any]] = DicomWebOptions
    summary = "DICOMweb (QIDO-RS, WADO-RS, STOW-RS, WADO-URI) for viewers and modalities, on the HTTP port (from)."
    default_port: ClassVar[int] = 80
    producer = Adapter.producer

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        o = endpoint.options
        if not o.host:
            return ["dicomweb: needs a host, e.g. dicomweb://0.0.0.0:8080/dicomweb"]
        problems = self.engine_port_problems(o)
        try:
            # Asked now, while lint runs, so the engine starts the service with the others.
            self.context.service(o.archive)
        except ComponentError as exc:
            problems.append(f"dicomweb: option 'archive': {exc}")
        return problems

    def archive(self, name: str) -> ArchiveApi:
        """The archive of service ``name``; a service without one is a configuration error."""
        service = self.context.service(name)
        archive = getattr(service, "archive", None)
        if archive is None:
            raise ComponentError(f"dicomweb: service '{name}' has no archive (option 'archive')")
        return archive  # type: ignore[no-any-return]

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        options: DicomWebOptions = endpoint.options
        return DicomWebConsumer(
            self.context.http,
            options,
            handler,
            route_id,
            lambda: self.archive(options.archive),
            self.context.settings.spool_dir,
            self.context.settings.dicom_ae_title,
        )


__all__ = ["DicomWebAdapter", "DicomWebOptions"]
