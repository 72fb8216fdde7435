"""``stomp:``: message brokers over STOMP 1.2 (RabbitMQ's rabbitmq_stomp, ActiveMQ), the JMS bridge.

``from: stomp://user:pass@broker:61613/queue/orders`` subscribes with
client-individual acknowledgement and ACKs each message only once the engine
holds it (see :mod:`adapters.stomp.consumer`); ``to:
stomp://broker:61613/topic/empi.events`` queues a durable delivery that a
worker SENDs persistently, done only when the broker's RECEIPT came (see
:mod:`adapters.stomp.producer`). Both sides reconnect over the failover list;
``tls=true`` speaks STOMP over TLS.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from adapters.http import tls
from adapters.stomp.consumer import StompConsumer
from adapters.stomp.options import StompOptions, TlsAsClient, problems
from adapters.stomp.producer import StompProducer
from esb.components import Adapter, Consumer, Endpoint, Handler, Producer
from esb.uri import EndpointUri, UriError

__all__ = ["StompAdapter", "StompConsumer", "StompOptions", "StompProducer"]


class StompAdapter(Adapter):
    scheme = "stomp"
    Options: ClassVar[type[Any]] = StompOptions
    summary = (
        "STOMP brokers (RabbitMQ, ActiveMQ): subscribe and ACK after the journal commit (from), "
        "or SEND persistently and await the receipt (to)."
    )
    uri_form: ClassVar[str] = "stomp://[USER:PASSWORD@]HOST:PORT/queue/NAME?option=value&..."

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        values: dict[str, Any] = {"host": uri.host or "", "destination": uri.path}
        if uri.port is not None:
            values["port"] = uri.port
        parts = urlsplit(uri.raw.strip())
        if parts.username is not None:
            for name in ("login", "passcode"):
                if name in uri.params:
                    raise UriError(
                        f"stomp: '{uri.without_query().split('@')[-1]}': credentials are given both in the URI "
                        f"and as option '{name}'; keep one (e.g. stomp://USER:${{PASSWORD}}@host:61613/queue/NAME)"
                    )
            values["login"] = unquote(parts.username)
            values["passcode"] = unquote(parts.password or "")
        return values

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        found = problems(endpoint.options, consumer=consumer)
        options: StompOptions = endpoint.options
        if options.tls and not found:
            try:
                tls.client_context(TlsAsClient.of(options))
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                found.append(f"stomp: cannot load the TLS files: {exc}")
        return found

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        self._usable(endpoint, consumer=True)
        settings = self.context.settings
        return StompConsumer(endpoint.options, handler, route_id, shutdown_timeout=settings.shutdown_timeout)

    def producer(self, endpoint: Endpoint) -> Producer:
        self._usable(endpoint, consumer=False)
        return StompProducer(endpoint.options)

    def _usable(self, endpoint: Endpoint, *, consumer: bool) -> None:
        """Routes are linted before they run, listener URIs (config/listeners.yaml) are not: check here too."""
        found = problems(endpoint.options, consumer=consumer)
        if found:
            raise UriError("; ".join(found))
