"""The listening side: a pynetdicom SCP for Verification, Storage, Query/Retrieve, Storage Commitment and
Modality Worklist.

pynetdicom serves each association in a thread of its own; the handlers
(:mod:`adapters.dicom.store`, :mod:`adapters.dicom.qr`) reach back to the
engine loop only for C-STORE. Associations are refused by pynetdicom itself:
a called AE title other than ours (reason 7), a calling AE title not listed
in ``calling_aes`` (reason 3), more than ``max_associations`` at once
(transient), a SOP class we do not serve (that presentation context only).

Over TLS the association's thread does the handshake (:class:`adapters.dicom.network.Server`):
a failed one, or a certificate not in ``peers`` (answered A-ASSOCIATE-RJ, permanent,
calling AE title not recognized), is logged and audited as a refused node; a
C-STORE's exchange carries the certificate as ``tls-peer-subject``/``tls-peer-fingerprint``.

Stopping: new C-STOREs are answered 0xA700 (send again later), the accept loop
stops, C-STOREs whose route is running finish and get their status, then the
remaining associations are aborted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt

from adapters.dicom import network
from adapters.dicom.commitment import CommitmentScp
from adapters.dicom.contexts import scp_contexts
from adapters.dicom.mwl import ModalityWorklist, PerformedStepScp, WorklistApi, dispatching_find
from adapters.dicom.options import DicomOptions
from adapters.dicom.qr import QueryRetrieve
from adapters.dicom.store import Receiver
from adapters.dicom.transcoding import RecordingAE
from adapters.http.tls import allowed_peers
from esb.components import Consumer, Handler, Outcome
from esb.exchange import Exchange
from esb.security.peers import with_identity
from profiles.dicom import audit
from profiles.dicom.api import ArchiveApi
from profiles.dicom.config import RemoteAe

log = logging.getLogger("esb.adapters.dicom")

POLL_INTERVAL = 0.2


class DicomConsumer(Consumer):
    def __init__(
        self,
        options: DicomOptions,
        handler: Handler,
        route_id: str,
        *,
        ae_title: str,
        spool_dir: Path,
        archive: Callable[[], ArchiveApi] | None,
        remote_aes: Callable[[], dict[str, RemoteAe]],
        worklist: Callable[[], WorklistApi] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.options, self.handler, self.route_id = options, handler, route_id
        self.ae_title, self.spool_dir = ae_title, spool_dir
        self.archive, self.remote_aes, self.worklist = archive, remote_aes, worklist
        self.ssl_context, self.shutdown_timeout = ssl_context, shutdown_timeout
        self.receiver: Receiver | None = None
        self._server: network.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (differs from the options when they ask for port 0)."""
        assert self._server is not None, "consumer not started"
        return int(self._server.server_address[1])

    def _application_entity(self) -> AE:
        o = self.options
        ae = RecordingAE(self.ae_title)  # notes the C-MOVE sub-association (transcoding.py)
        network.configure(ae, o)
        ae.maximum_associations = o.max_associations
        ae.require_called_aet = o.check_called_ae
        ae.require_calling_aet = list(o.calling_aes)
        return ae

    async def start(self) -> None:
        o = self.options
        self.receiver = Receiver(o, self._with_peer, self.route_id, self.spool_dir, asyncio.get_running_loop())
        handlers: list[Any] = [network.NODELAY_HANDLER, (evt.EVT_C_STORE, self.receiver)]
        if self.ssl_context is not None:
            handlers.append((evt.EVT_CONN_CLOSE, self._forget))
        handlers.append((evt.EVT_CONN_CLOSE, audit.closed(self.receiver.transfers)))
        find: Callable[..., Any] | None = None  # pynetdicom takes one C-FIND handler: archive and worklist share it
        if self.archive is not None:
            association = {"max_pdu": o.max_pdu, "evt_handlers": [network.NODELAY_HANDLER]}
            qr = QueryRetrieve(self.route_id, self.archive, self.remote_aes, self.ae_title, association)
            find = qr.find
            handlers += [(evt.EVT_C_MOVE, qr.move), (evt.EVT_C_GET, qr.get)]
            handlers += CommitmentScp(self.route_id, self.archive, qr.destination).handlers()
        if self.worklist is not None:
            find = dispatching_find(ModalityWorklist(self.route_id, self.worklist), find)
            handlers += PerformedStepScp(self.route_id, self.worklist).handlers()
        if find is not None:
            handlers.append((evt.EVT_C_FIND, find))
        ae = self._application_entity()

        def bind() -> network.Server:
            cls = network.server_class(o)
            address = (o.host, o.port)
            # Contexts given here keep their SCP/SCU roles (AE.supported_contexts would drop them).
            contexts = scp_contexts(query_retrieve=self.archive is not None, worklist=self.worklist is not None)
            made = ae.make_server(
                address, contexts=contexts, ssl_context=self.ssl_context, evt_handlers=handlers, server_class=cls
            )
            assert isinstance(made, network.Server)
            made.peers = allowed_peers(o)
            made.handshake_timeout = float(o.acse_timeout)
            return made

        server = self._server = await asyncio.to_thread(bind)
        self._thread = threading.Thread(
            target=server.serve_forever, args=(POLL_INTERVAL,), name=f"dicom-{self.route_id}", daemon=True
        )
        self._thread.start()
        log.info("route %s: DICOM SCP %s%s listening on %s:%d", self.route_id, self.ae_title,
                 " over TLS" if self.ssl_context else "", o.host, self.port)  # fmt: skip

    def _forget(self, event: Any) -> None:
        if self._server is not None:
            self._server.forget(event)

    async def _with_peer(self, exchange: Exchange, wait: bool) -> Outcome:
        """The route's handler, with the association's client certificate on the exchange (``tls-peer-*``)."""
        if self.ssl_context is not None and self._server is not None:
            identity = self._server.identity(exchange.headers.get("dicom-peer", ""))
            with_identity(exchange.headers, identity)
        return await self.handler(exchange, wait)

    async def stop(self) -> None:
        server = self._server
        if server is None:
            return
        if self.receiver is not None:
            self.receiver.closing = True
        await asyncio.to_thread(server.shutdown)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        while self.receiver is not None and self.receiver.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for assoc in server.active_associations:
            await asyncio.to_thread(assoc.abort)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, self.shutdown_timeout)
        if self.receiver is not None:
            self.receiver.transfers.close_all()
        self._server = None
        log.info("route %s: DICOM SCP stopped", self.route_id)
