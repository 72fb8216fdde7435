"""One aiohttp server per (host, port), shared by everything that listens on it.

SOAP endpoints, DICOMweb, the admin API, health and metrics all live on the
engine's HTTP port. aiohttp freezes its router once serving, so mounting is a
dict lookup behind one catch-all route: routes can be added while running.
A server speaks TLS when its first mount brings an ``ssl_context`` (an ``https:``
consumer on a port of its own); later mounts must bring the same context object.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

HttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MountConflictError(ValueError):
    pass


@dataclass
class _Server:
    host: str
    port: int
    runner: web.AppRunner | None = None
    site: web.TCPSite | None = None
    mounts: dict[str, HttpHandler] = field(default_factory=dict)
    prefixes: dict[str, HttpHandler] = field(default_factory=dict)
    ssl_context: ssl.SSLContext | None = None


class HttpHub:
    def __init__(self) -> None:
        self._servers: dict[tuple[str, int], _Server] = {}

    def mount(
        self,
        host: str,
        port: int,
        path: str,
        handler: HttpHandler,
        *,
        prefix: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Serve ``path`` (or everything below it with ``prefix``) on host:port."""
        server = self._servers.setdefault((host, port), _Server(host, port, ssl_context=ssl_context))
        if server.ssl_context is not ssl_context:
            served = "plain HTTP" if server.ssl_context is None else "HTTPS"
            served += "" if server.ssl_context is None or ssl_context is None else " with another TLS setup"
            raise MountConflictError(f"{host}:{port} already serves {served}; give {path} a port of its own")
        table = server.prefixes if prefix else server.mounts
        path = "/" + path.strip("/") if path.strip("/") else "/"
        if path in table:
            raise MountConflictError(f"http://{host}:{port}{path} is already served")
        table[path] = handler

    def unmount(self, host: str, port: int, path: str) -> None:
        server = self._servers.get((host, port))
        if server is not None:
            path = "/" + path.strip("/") if path.strip("/") else "/"
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

    async def _start(self, server: _Server, ssl_context: ssl.SSLContext | None) -> None:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            path = "/" + request.path.strip("/") if request.path.strip("/") else "/"
            handler = server.mounts.get(path)
            if handler is None:
                best = ""
                for prefix in server.prefixes:
                    if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and len(prefix) > len(best):
                        best = prefix
                if best:
                    handler = server.prefixes[best]
            if handler is None:
                return web.json_response({"error": f"nothing is served at {path}"}, status=404)
            return await handler(request)

        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", dispatch)
        server.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await server.runner.setup()
        server.site = web.TCPSite(server.runner, server.host, server.port, ssl_context=ssl_context)
        await server.site.start()

    async def close(self) -> None:
        for server in self._servers.values():
            if server.runner is not None:
                await server.runner.cleanup()
                server.runner = None
        self._servers.clear()
