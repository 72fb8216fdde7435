"""``mllp:``: HL7 v2 over MLLP, as a listener (from) or a sender (to).

``from: mllp://0.0.0.0:2575?ack=application&charset=GB18030`` serves
persistent connections and answers every message with an ACK once it is
durable (see :mod:`adapters.mllp.inbound` for the acknowledgement rules);
``to: mllp://peer:2576?timeout=30s`` queues a durable delivery that a worker
sends over a pooled connection, waiting for the ACK. ``tls=true`` speaks MLLP
over TLS on either side, mutual with ``client_auth=required``.
"""

from __future__ import annotations

import ssl
from functools import partial
from typing import Any, ClassVar

from adapters.http import tls
from adapters.mllp.consumer import MllpConsumer
from adapters.mllp.options import MllpOptions, problems
from adapters.mllp.producer import MllpProducer
from esb.components import Adapter, Consumer, Endpoint, Handler, Producer
from esb.uri import EndpointUri


class MllpAdapter(Adapter):
    scheme = "mllp"
    Options: ClassVar[type[Any]] = MllpOptions
    summary = "HL7 v2 over MLLP: listen with ACKs after the journal commit (from), or send and await the ACK (to)."
    uri_form: ClassVar[str] = "mllp://HOST:PORT?option=value&..."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server_contexts = tls.ServerContexts()

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        values: dict[str, Any] = {"host": uri.host or ""}
        if uri.port is not None:
            values["port"] = uri.port
        return values

    def listen_key(self, endpoint: Endpoint) -> tuple[Any, ...] | None:
        o = endpoint.options
        return None if o.port == 0 else (o.host, o.port)

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        return problems(endpoint.options, consumer=consumer)

    def server_ssl(self, options: MllpOptions) -> ssl.SSLContext | None:
        return self._server_contexts.get(options) if options.tls else None

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        options: MllpOptions = endpoint.options
        return MllpConsumer(
            options,
            handler,
            route_id,
            self.context.journal,
            self.server_ssl(options),
            shutdown_timeout=self.context.settings.shutdown_timeout,
        )

    def producer(self, endpoint: Endpoint) -> Producer:
        options: MllpOptions = endpoint.options
        return MllpProducer(options, partial(tls.client_context, options) if options.tls else None)


__all__ = ["MllpAdapter", "MllpOptions"]
