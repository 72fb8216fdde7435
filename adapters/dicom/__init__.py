"""``dicom:``: DICOM DIMSE over TCP (pynetdicom), as an SCP (from) or a C-STORE SCU (to).

``from: dicom://0.0.0.0:11112?ae_title=ESB`` accepts Verification, every
Storage SOP Class in the common transfer syntaxes, and Patient/Study Root
C-FIND, C-MOVE and C-GET answered by the archive service named in ``archive``.
Each C-STORE becomes one exchange (body: the header as DICOM JSON; attachment:
the received Part 10 file, spooled without decoding; ``dicom-*`` headers) and
is answered with a status once the route completed
(:mod:`adapters.dicom.store`). ``to: dicom://PACS@host:104?calling_ae=ESB``
queues a durable C-STORE of the exchange's DICOM attachment
(:mod:`adapters.dicom.producer`). ``tls=true`` speaks DICOM over TLS on either
side. Several engine processes may share one port with ``reuse_port=true``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar, cast
from urllib.parse import unquote, urlsplit

from adapters.dicom.options import DEFAULT_ARCHIVE, DicomOptions, problems
from adapters.http import tls
from esb import registry
from esb.components import Adapter, Consumer, Endpoint, Handler, Producer
from esb.errors import ComponentError
from esb.uri import EndpointUri
from profiles.dicom.api import ArchiveApi
from profiles.dicom.config import RemoteAe, load_dicom_config


class DicomAdapter(Adapter):
    scheme = "dicom"
    Options: ClassVar[type[Any]] = DicomOptions
    summary = (
        "DICOM DIMSE: Storage, Verification and Query/Retrieve SCP answering C-STORE after the route (from), "
        "or C-STORE SCU of the message's DICOM file (to)."
    )
    uri_form: ClassVar[str] = "dicom://[AE_TITLE@]HOST:PORT?option=value&..."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server_contexts = tls.ServerContexts()

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        values: dict[str, Any] = {"host": uri.host or ""}
        if uri.port is not None:
            values["port"] = uri.port
        user = urlsplit(uri.raw.strip()).username
        if user:
            values["ae_title"] = unquote(user)
        return values

    def listen_key(self, endpoint: Endpoint) -> tuple[Any, ...] | None:
        o: DicomOptions = endpoint.options
        # reuse_port shares a port between engine processes, never between two routes of one engine.
        return None if o.port == 0 else (o.host, o.port)

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        options: DicomOptions = endpoint.options
        found = problems(options, consumer=consumer)
        if options.archive:
            # Naming the service here also makes the engine create and start it with the others.
            try:
                self.context.service(options.archive)
            except ComponentError as exc:
                # A sender only falls back on the archive: without one, the default is no fallback.
                if consumer or options.archive != DEFAULT_ARCHIVE:
                    found.append(f"dicom: option 'archive': {exc}")
        if options.worklist:
            try:
                self.context.service(options.worklist)
            except ComponentError as exc:
                found.append(f"dicom: option 'worklist': {exc}")
            else:
                # the registered class, not the instance: route tests (esb test) stand mocks in for services
                if not hasattr(registry.service_class(options.worklist), "worklist"):
                    found.append(f"dicom: option 'worklist': service '{options.worklist}' keeps no worklist "
                                 "(the Modality Worklist is service 'worklist')")  # fmt: skip
        return found

    def _worklist(self, name: str) -> Any:
        worklist = getattr(self.context.service(name), "worklist", None)
        if worklist is None:
            raise ComponentError(f"service '{name}' has no worklist (is it service:worklist?)")
        return worklist

    def _archive(self, name: str) -> ArchiveApi:
        archive = getattr(self.context.service(name), "archive", None)
        if archive is None:
            raise ComponentError(f"service '{name}' has no archive (is it a DICOM archive service?)")
        return cast(ArchiveApi, archive)

    @staticmethod
    def _remote_aes() -> dict[str, RemoteAe]:
        return load_dicom_config().remote_aes

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        # pynetdicom is imported (and its process-wide settings made) only by engines that use it.
        from adapters.dicom.consumer import DicomConsumer

        options: DicomOptions = endpoint.options
        settings = self.context.settings
        return DicomConsumer(
            options,
            handler,
            route_id,
            ae_title=options.ae_title or settings.dicom_ae_title,
            spool_dir=settings.spool_dir,
            archive=partial(self._archive, options.archive) if options.archive else None,
            worklist=partial(self._worklist, options.worklist) if options.worklist else None,
            remote_aes=self._remote_aes,
            ssl_context=self._server_contexts.get(options) if options.tls else None,
            shutdown_timeout=settings.shutdown_timeout,
        )

    def producer(self, endpoint: Endpoint) -> Producer:
        from adapters.dicom.producer import DicomProducer

        options: DicomOptions = endpoint.options
        factory = partial(tls.client_context, options) if options.tls else None
        calling_ae = options.calling_ae or self.context.settings.dicom_ae_title
        archive = partial(self._archive, options.archive) if self._has_service(options.archive) else None
        return DicomProducer(options, calling_ae, factory, archive)

    def _has_service(self, name: str) -> bool:
        if not name:
            return False
        try:
            self.context.service(name)
        except ComponentError:
            return False
        return True


__all__ = ["DicomAdapter", "DicomOptions"]
