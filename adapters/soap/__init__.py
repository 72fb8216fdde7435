"""``soap:``: SOAP 1.1/1.2 endpoints with WS-Addressing and MTOM/XOP, on the engine's HTTP hub.

``from: soap://0.0.0.0:8080/xds/registry?wsdl=xds-registry.wsdl`` mounts the
path on the shared aiohttp server like ``http:`` does (see
:mod:`adapters.soap.consumer` for what a request becomes and how it is
answered); ``to: soap://peer:8080/xds/registry?action=urn:...`` queues a
durable delivery sent with :func:`adapters.soap.client.call`. ``tls=true``
speaks HTTPS, on a port of its own when listening.

Modules: :mod:`.envelope` (envelopes, Faults, safe parsing), :mod:`.mtom`
(streaming MIME packages), :mod:`.wsdl` (``?wsdl``), :mod:`.options`, :mod:`.wssecurity`
(WS-Security: signed requests in and out, UsernameToken, replay window).
"""

from __future__ import annotations

import ssl
from functools import partial
from typing import Any, ClassVar

from adapters.http import HttpAdapter, tls
from adapters.soap.consumer import SoapConsumer
from adapters.soap.options import SoapOptions, problems
from adapters.soap.producer import SoapProducer
from adapters.soap.wssecurity import WsSecurityPolicy, WsSigner
from esb.components import Consumer, Endpoint, Handler, Producer
from esb.errors import SoapFaultError
from esb.security.users import UserDirectory, directory


class SoapAdapter(HttpAdapter):
    """Built on ``http:``: same URI shape, same hub, same listen key (so lint sees clashes between them)."""

    scheme = "soap"
    Options: ClassVar[type[Any]] = SoapOptions
    summary = "SOAP 1.1/1.2 with WS-Addressing and MTOM/XOP: serve an endpoint (from) or call one (to)."
    default_port: ClassVar[int] = 80

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server_contexts = tls.ServerContexts()

    def check(self, endpoint: Endpoint, *, consumer: bool) -> list[str]:
        o = endpoint.options
        found = problems(o, consumer=consumer)
        if consumer and o.host:
            found.extend(self.engine_port_problems(o))
            settings = self.context.settings
            if o.tls and o.port == settings.http_port and o.host == settings.listen_host:
                found.append(f"soap: port {o.port} is the engine's plain HTTP port; give tls=true a port of its own")
        return found

    def soap_ssl(self, options: SoapOptions) -> ssl.SSLContext | None:
        return self._server_contexts.get(options) if options.tls else None

    def users(self) -> UserDirectory | None:
        """The engine's users (HTTP credentials, WS-Security UsernameToken, replay window), when it has a database."""
        journal = self.context.journal
        return directory(journal.engine) if journal is not None else None

    def consumer(self, endpoint: Endpoint, handler: Handler, route_id: str) -> Consumer:
        options: SoapOptions = endpoint.options
        spool = self.context.settings.spool_dir
        security = None
        if options.wss != "none" or options.wss_username != "none":
            security = WsSecurityPolicy(
                mode=options.wss, username=options.wss_username, window=float(options.wss_window),
                cafile=options.wss_cafile, peers=options.wss_peers, users=self.users(),
            )  # fmt: skip
        return SoapConsumer(self.context.http, options, handler, route_id, spool, self.soap_ssl(options),
                            users=self.users, security=security)  # fmt: skip

    def producer(self, endpoint: Endpoint) -> Producer:
        options: SoapOptions = endpoint.options
        factory = partial(tls.client_context, options) if options.tls else None
        signer = None
        if options.wss_sign and options.wss_certfile:
            signer = WsSigner(options.wss_certfile, options.wss_keyfile, user=options.wss_user,
                              password_env=options.wss_password_env)  # fmt: skip
        return SoapProducer(options, self.context.settings.data_dir / "spool", factory, signer=signer)


__all__ = ["SoapAdapter", "SoapFaultError", "SoapOptions"]
