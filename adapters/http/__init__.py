"""``http:`` and ``https:``: serve a path on the engine's HTTP hub, or call a peer.

``from: http://0.0.0.0:8080/orders?reply=accepted`` mounts ``/orders`` on the
shared aiohttp server for that host:port (the one with /healthz and /metrics
when the port is the engine's); ``to: https://peer:8443/in?cafile=ca.pem``
queues a durable delivery that a worker POSTs with retries.

An ``https:`` consumer needs a port of its own, since one server speaks one
TLS setup; SSL contexts are cached per setup, so routes that share a port and
the same files share a context and the hub accepts them as one server.
"""

from __future__ import annotations

import ssl
from functools import partial
from typing import Any, ClassVar

from adapters.http import tls
from adapters.http.consumer import HttpConsumer
from adapters.http.options import HttpOptions, misplaced
from adapters.http.producer import HttpProducer
from esb.components import Adapter, Consumer, Endpoint, Handler, Producer
from esb.security.users import UserDirectory, directory
from esb.uri import EndpointUri

#: paths the engine itself serves on its own HTTP port
ENGINE_PATHS = ("/healthz", "/readyz", "/metrics")


def normal_path(path: str) -> str:
    """The hub's spelling of a path (``/a/b``), so lint compares what the hub compares."""
    stripped = path.strip("/")
    return "/" + stripped if stripped else "/"


class HttpAdapter(Adapter):
    scheme = "http"
    Options: ClassVar[type[Any]] = HttpOptions
    summary = "Serve an HTTP path (from) or call an HTTP peer (to), on aiohttp."
    default_port: ClassVar[int] = 80

    def path_options(self, uri: EndpointUri) -> dict[str, Any]:
        return {
            "host": uri.host or "",
            "port": self.default_port if uri.port is None else uri.port,
            "path": uri.path or "/",
        }

    def listen_key(self, endpoint: Endpoint) -> tuple[Any, ...]:
        o = endpoint.options
        return (o.host, o.port, normal_path(o.path))

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        where = f"{self.scheme}:"
        o = endpoint.options
        if not o.host:
            side = "0.0.0.0:8080/orders" if consumer else "peer.example.org/in"
            return [f"{where} needs a host, e.g. {self.scheme}://{side}"]
        problems = misplaced(o, consumer=consumer, where=where)
        if consumer:
            problems.extend(self.engine_port_problems(o))
        return problems

    def engine_port_problems(self, options: HttpOptions) -> list[str]:
        """Clashes with the engine's own HTTP server (admin paths, plain HTTP, bind address)."""
        settings = self.context.settings
        host, port = settings.listen_host, settings.http_port
        if options.port != port:
            return []
        if options.host != host:
            if port == 0:
                return []
            return [f"{self.scheme}: port {port} is the engine's HTTP port on {host}; use host {host} to share it"]
        problems = []
        if normal_path(options.path) in ENGINE_PATHS:
            problems.append(f"{self.scheme}: path '{options.path}' is served by the engine itself on port {port}")
        if self.scheme == "https":
            problems.append(f"https: port {port} is the engine's plain HTTP port; give HTTPS a port of its own")
        return problems

    def server_ssl(self, options: HttpOptions) -> ssl.SSLContext | None:
        return None

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        options = endpoint.options
        return HttpConsumer(self.context.http, options, handler, route_id, self.server_ssl(options), users=self.users)

    def producer(self, endpoint: Endpoint) -> Producer:
        return HttpProducer(self.scheme, endpoint.options)

    def users(self) -> UserDirectory | None:
        """The engine's users, for requests that carry credentials (Bearer token or Basic)."""
        journal = self.context.journal
        return directory(journal.engine) if journal is not None else None


class HttpsAdapter(HttpAdapter):
    scheme = "https"
    Options: ClassVar[type[Any]] = tls.HttpsOptions
    summary = "Serve an HTTPS path, optionally with client certificates (from), or call an HTTPS peer (to)."
    default_port: ClassVar[int] = 443

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server_contexts = tls.ServerContexts()

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        problems = super().check(endpoint, consumer=consumer)
        return problems + tls.tls_problems(endpoint.options, consumer=consumer, where="https:")

    def server_ssl(self, options: HttpOptions) -> ssl.SSLContext | None:
        assert isinstance(options, tls.HttpsOptions)
        return self._server_contexts.get(options)

    def producer(self, endpoint: Endpoint) -> Producer:
        return HttpProducer(self.scheme, endpoint.options, partial(tls.client_context, endpoint.options))


__all__ = ["HttpAdapter", "HttpsAdapter"]
