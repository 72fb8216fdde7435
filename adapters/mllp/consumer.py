"""The listening side: persistent MLLP connections, each read frame by frame.

Every connection is served by its own task and reads with a deadline: the
read timeout while a frame is open (a sender that stalls mid-message), the
idle timeout between frames. Framing faults, oversize frames, timeouts and
refused messages are logged with the peer address at WARNING, never with
message content. A connection's frames are taken one at a time, so its ACKs go
back in the order its messages came.

Over TLS (:class:`esb.security.tls.TlsAcceptor`, so failed handshakes are
audited) a peer whose certificate is not in ``peers`` is disconnected before
anything is read: no ACK, so its sender knows the message was not taken.
Messages carry the certificate as ``tls-peer-subject``/``tls-peer-fingerprint``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from adapters.http.tls import allowed_peers, peer_subject
from adapters.mllp.dedup import DedupStore, Recorder
from adapters.mllp.framing import (
    Event,
    Frame,
    FrameDecoder,
    Garbage,
    MissingCr,
    Oversize,
    Unterminated,
    frame,
)
from adapters.mllp.inbound import Connection, Inbound
from adapters.mllp.options import MllpOptions
from esb.components import Consumer, Handler
from esb.journal import Journal
from esb.security.peers import identity_of, refuse, with_identity
from esb.security.tls import TlsAcceptor

log = logging.getLogger("esb.adapters.mllp")

CHUNK = 64 * 1024
PRUNE_INTERVAL = 60.0


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "unknown")


class MllpConsumer(Consumer):
    def __init__(
        self,
        options: MllpOptions,
        handler: Handler,
        route_id: str,
        journal: Journal | None,
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.options, self.route_id, self.ssl_context = options, route_id, ssl_context
        self.peers = allowed_peers(options)
        self.shutdown_timeout = shutdown_timeout
        self.dedup = DedupStore(journal, options.dedup_window) if journal and options.dedup_window > 0 else None
        self.recorder = Recorder(self.dedup) if self.dedup else None
        self.inbound = Inbound(options, handler, route_id, self.dedup, self.recorder)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._busy: set[asyncio.Task[None]] = set()
        self._housekeeping: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = asyncio.Event()

    @property
    def port(self) -> int:
        """The bound port (differs from the options when they ask for port 0)."""
        assert self._server is not None and self._server.sockets, "consumer not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        o = self.options
        loop = asyncio.get_running_loop()

        def plain() -> asyncio.StreamReaderProtocol:  # what asyncio.start_server makes per connection
            return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=CHUNK, loop=loop), self._serve, loop=loop)

        factory = TlsAcceptor(self.ssl_context, "mllp").factory(plain) if self.ssl_context else plain
        self._server = await loop.create_server(factory, o.host, o.port)
        if self.recorder is not None:
            self.recorder.start()
            self._housekeeping = asyncio.create_task(self._prune_loop(), name=f"mllp-prune-{self.route_id}")
        log.info("route %s: MLLP%s listening on %s:%d", self.route_id, " over TLS" if self.ssl_context else "",
                 o.host, self.port)  # fmt: skip

    async def stop(self) -> None:
        """Stop listening, close idle connections, let those mid-message answer first."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task, writer in list(self._connections.items()):
            if task not in self._busy:
                writer.close()
        if self._connections:
            _, left = await asyncio.wait(set(self._connections), timeout=self.shutdown_timeout)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        self._stopped.set()
        if self._housekeeping is not None:
            await self._housekeeping
        if self.recorder is not None:
            await self.recorder.close()

    async def _prune_loop(self) -> None:
        """Drop expired duplicate records; stops between rounds, never inside one (see Recorder)."""
        assert self.dedup is not None
        while not self._stopping:
            try:
                await asyncio.to_thread(self.dedup.prune, self.route_id)
            except Exception as exc:
                log.error("route %s: pruning MLLP duplicate records failed: %s", self.route_id, type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), PRUNE_INTERVAL)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = _peer(writer)
        if self._stopping or len(self._connections) >= self.options.max_connections:
            why = "shutting down" if self._stopping else f"{self.options.max_connections} connections open"
            log.warning("route %s: connection from %s refused: %s", self.route_id, peer, why)
            writer.close()
            return
        headers = {"mllp-peer": peer}
        if self.ssl_context is not None:
            identity = identity_of(writer.get_extra_info("ssl_object"))
            refusal = self.peers.check(identity)
            if refusal is not None:  # closed unanswered: no message is taken from a node we do not know
                refuse(f"mllp:{self.port}", writer.get_extra_info("peername"), refusal, identity)
                writer.close()
                return
            subject = peer_subject(writer.get_extra_info("peercert"))
            if subject:
                headers["mllp-tls-subject"] = subject
            with_identity(headers, identity)
        self._connections[task] = writer
        log.debug("route %s: connection from %s", self.route_id, peer)
        try:
            await self._read(reader, writer, Connection(peer, headers))
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("route %s: connection from %s broke: %s", self.route_id, peer, type(exc).__name__)
        finally:
            del self._connections[task]
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection) -> None:
        o = self.options
        decoder = FrameDecoder(o.max_size)
        task = asyncio.current_task()
        assert task is not None
        while not self._stopping:
            timeout = o.read_timeout if decoder.in_frame else o.idle_timeout
            try:
                async with asyncio.timeout(timeout or None):
                    data = await reader.read(CHUNK)
            except TimeoutError:
                if decoder.in_frame:
                    log.warning("route %s: frame from %s not finished within %gs (%d bytes so far); closing",
                                self.route_id, conn.peer, timeout, decoder.pending)  # fmt: skip
                else:
                    log.info("route %s: connection from %s idle for %gs; closing", self.route_id, conn.peer, timeout)
                return
            if not data:
                self._report(decoder.flush(), conn)
                if decoder.in_frame:
                    log.warning("route %s: %s closed the connection in the middle of a frame (%d bytes); not taken",
                                self.route_id, conn.peer, decoder.pending)  # fmt: skip
                return
            self._busy.add(task)
            try:
                for event in decoder.feed(data):
                    if isinstance(event, Frame):
                        try:
                            answer = await self.inbound.take(event.data, conn)
                        except Exception as exc:
                            answer = self.inbound.failed(event.data, conn, exc)
                    elif isinstance(event, Oversize):
                        answer = self.inbound.oversize(event.head, event.size, conn)
                    elif not self._report([event], conn):
                        return
                    else:
                        continue
                    if answer is not None:
                        writer.write(frame(answer))
                        await writer.drain()
            finally:
                self._busy.discard(task)

    def _report(self, events: list[Event], conn: Connection) -> bool:
        """Log framing faults; False when the peer does not speak MLLP at all (close it)."""
        keep = True
        for event in events:
            if isinstance(event, Garbage):
                log.warning("route %s: %d bytes outside MLLP framing from %s; skipped",
                            self.route_id, event.size, conn.peer)  # fmt: skip
                if event.size > self.options.max_size:
                    log.warning("route %s: %s does not speak MLLP; closing", self.route_id, conn.peer)
                    keep = False
            elif isinstance(event, Unterminated):
                log.warning("route %s: frame from %s cut short by the next start block (missing end block, "
                            "%d bytes); discarded", self.route_id, conn.peer, event.size)  # fmt: skip
            elif isinstance(event, MissingCr):
                log.info("route %s: end block from %s not followed by CR; frame taken", self.route_id, conn.peer)
        return keep
