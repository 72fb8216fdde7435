"""One aiohttp server per (host, port), shared by everything that listens on it.

SOAP endpoints, DICOMweb, the admin API, health and metrics all live on the
engine's HTTP port. aiohttp freezes its router once serving, so mounting is a
dict lookup behind one catch-all route: routes can be added while running.

A server speaks TLS when it is declared so (:meth:`HttpHub.listen_tls`: the
engine's port with ``listen.tls_*`` settings; whatever mounts there without a
context of its own is served over it) or when its first mount brings an
``ssl_context`` (an ``https:`` consumer on a port of its own); later mounts
must bring the same context object. Handshakes are done by
:class:`esb.security.tls.TlsAcceptor`, so a refused node is logged and audited.

Allowed peers are checked per mount, after TLS: the mount's own list, else the
server's. A peer not on it gets 403 (or the mount's own refusal, e.g. a SOAP
Fault) and the connection is closed, so a refused node is reported once per
connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from esb.security.peers import AllowedPeers, PeerIdentity, identity_of, refuse
from esb.security.tls import TlsAcceptor, server_context
from esb.settings import Settings

HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: builds the answer to a peer refused by its certificate (``reason`` is safe to show)
Refusal = Callable[[web.Request, str], web.StreamResponse]


class MountConflictError(ValueError):
    pass


def peer_identity(request: web.Request) -> PeerIdentity | None:
    """The client certificate of the request's TLS connection (None on plain HTTP or without one)."""
    transport = request.transport
    return identity_of(transport.get_extra_info("ssl_object")) if transport is not None else None


def refused(request: web.Request, reason: str) -> web.StreamResponse:
    """The default answer to a refused peer: 403 with the reason, as the hub's other errors."""
    return web.json_response({"error": f"client certificate refused here: {reason}"}, status=403)


@dataclass(frozen=True)
class _Mount:
    handler: HttpHandler
    peers: AllowedPeers
    refusal: Refusal


@dataclass
class _Server:
    host: str
    port: int
    runner: web.AppRunner | None = None
    site: web.BaseSite | None = None
    mounts: dict[str, _Mount] = field(default_factory=dict)
    prefixes: dict[str, _Mount] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None
    #: set by listen_tls: mounts without a context of their own join this one
    shared_tls: bool = False
    peers: AllowedPeers = field(default_factory=AllowedPeers)


class _TlsSite(web.BaseSite):
    """A TCP site whose TLS handshakes go through a :class:`TlsAcceptor` (aiohttp's would hide failures)."""

    __slots__ = ("_host", "_port", "_acceptor")

    def __init__(self, runner: web.AppRunner, host: str, port: int, acceptor: TlsAcceptor) -> None:
        super().__init__(runner)
        self._host, self._port, self._acceptor = host, port, acceptor

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._acceptor.factory(server), self._host, self._port, backlog=self._backlog
        )


def _normal(path: str) -> str:
    return "/" + path.strip("/") if path.strip("/") else "/"


class HttpHub:
    def __init__(self) -> None:
        self._servers: dict[tuple[str, int], _Server] = {}

    def listen_tls(
        self, host: str, port: int, ssl_context: ssl.SSLContext, *, peers: AllowedPeers | None = None
    ) -> None:
        """Serve host:port over TLS; mounts without a context of their own are served over it too.

        ``peers`` applies to every mount that does not bring its own list.
        Call before the first mount on that port.
        """
        if (host, port) in self._servers:
            raise MountConflictError(f"{host}:{port} is already served; declare its TLS before mounting on it")
        self._servers[(host, port)] = _Server(
            host, port, ssl_context=ssl_context, shared_tls=True, peers=peers or AllowedPeers()
        )

    def configure_engine_port(self, settings: Settings) -> None:
        """The engine's own HTTP port: TLS and allowed peers from ``listen.tls_*``; plain HTTP without a certificate."""
        s = settings
        if not s.tls_certfile:
            return
        context = server_context(s.tls_certfile, s.tls_keyfile, s.tls_cafile, s.tls_client_auth)
        self.listen_tls(s.listen_host, s.http_port, context, peers=AllowedPeers.parse(s.tls_peers))

    def mount(
        self,
        host: str,
        port: int,
        path: str,
        handler: HttpHandler,
        *,
        prefix: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        peers: AllowedPeers | None = None,
        refusal: Refusal = refused,
    ) -> None:
        """Serve ``path`` (or everything below it with ``prefix``) on host:port.

        ``peers``: the client certificates this mount accepts (default: the
        server's list, if any); ``refusal`` answers the others.
        """
        server = self._servers.setdefault((host, port), _Server(host, port, ssl_context=ssl_context))
        joins = server.shared_tls and ssl_context is None
        if server.ssl_context is not ssl_context and not joins:
            served = "plain HTTP" if server.ssl_context is None else "HTTPS"
            served += "" if server.ssl_context is None or ssl_context is None else " with another TLS setup"
            raise MountConflictError(f"{host}:{port} already serves {served}; give {path} a port of its own")
        table = server.prefixes if prefix else server.mounts
        path = _normal(path)
        if path in table:
            raise MountConflictError(f"http://{host}:{port}{path} is already served")
        table[path] = _Mount(handler, peers or AllowedPeers(), refusal)

    def unmount(self, host: str, port: int, path: str) -> None:
        server = self._servers.get((host, port))
        if server is not None:
            path = _normal(path)
            server.mounts.pop(path, None)
            server.prefixes.pop(path, None)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        for server in self._servers.values():
            if server.runner is None:
                await self._start(server, server.ssl_context or ssl_context)

    def bound_port(self, host: str, port: int) -> int:
        """The real port (after binding port 0 in tests)."""
        server = self._servers[(host, port)]
        assert server.site is not None and server.site._server is not None
        sockets = server.site._server.sockets  # type: ignore[attr-defined]
        return int(sockets[0].getsockname()[1])

    def _find(self, server: _Server, path: str) -> tuple[str, _Mount] | None:
        mount = server.mounts.get(path)
        if mount is not None:
            return path, mount
        best = ""
        for prefix in server.prefixes:
            if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and len(prefix) > len(best):
                best = prefix
        return (best, server.prefixes[best]) if best else None

    async def _start(self, server: _Server, ssl_context: ssl.SSLContext | None) -> None:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            path = _normal(request.path)
            found = self._find(server, path)
            if found is None:
                return web.json_response({"error": f"nothing is served at {path}"}, status=404)
            mounted, mount = found
            peers = mount.peers or server.peers
            if ssl_context is not None and peers:
                identity = peer_identity(request)
                reason = peers.check(identity)
                if reason is not None:
                    local = f"https:{self.bound_port(server.host, server.port)}{mounted}"
                    refuse(local, request.transport.get_extra_info("peername") if request.transport else None,
                           reason, identity)  # fmt: skip
                    answer = mount.refusal(request, reason)
                    answer.force_close()  # one refusal (and one audit record) per connection
                    return answer
            return await mount.handler(request)

        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", dispatch)
        server.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await server.runner.setup()
        if ssl_context is None:
            server.site = web.TCPSite(server.runner, server.host, server.port)
        else:
            server.site = _TlsSite(server.runner, server.host, server.port, TlsAcceptor(ssl_context, "https"))
        await server.site.start()

    async def close(self) -> None:
        for server in self._servers.values():
            if server.runner is not None:
                await server.runner.cleanup()
                server.runner = None
        self._servers.clear()
