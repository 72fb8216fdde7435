"""Syslog for audit messages (ITI-20): RFC 5424 messages over TLS (RFC 5425) or UDP (RFC 5426).

Written by hand over ``ssl`` and asyncio: the standard library's
``logging.handlers.SysLogHandler`` writes the old BSD format (RFC 3164) with
no RFC 5424 header, no structured data, no octet-counting framing (RFC 5425
section 4.3) and no TLS; and the sender must know whether a batch went out,
which a logging handler never tells.

The message: ``<85>1 TIMESTAMP HOSTNAME APP-NAME PROCID IHE+RFC-3881 [esb@32473 id="..."] BOM XML``:
facility 10 (security/authorization), severity 5 (notice), MSGID as ITI-20
asks, the record id as structured data (so a repository, or a test, can tell
a record sent twice after a broken connection from two records), the XML as
UTF-8 after a BOM (RFC 5424 section 6.4). 32473 is the private enterprise
number RFC 5612 sets aside for documentation and examples.

TLS has no acknowledgement: a batch counts as sent once written and drained
on a connection the peer had not closed. Before each batch the connection is
checked for the peer's close (an ARR that restarted), so records are never
written into a connection the ARR already left. Records in flight when the
ARR dies are lost to it, the limit RFC 5425 itself has. UDP is fire and
forget (RFC 5426): a record counts as sent when the datagram left.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import ssl
from typing import Protocol

from esb.audit.config import AuditConfig, Repository
from esb.errors import ConfigError, EsbError

BOM = b"\xef\xbb\xbf"
FACILITY_AUTH = 10
SEVERITY_NOTICE = 5
MSGID = "IHE+RFC-3881"
SD_ID = "esb@32473"
log = logging.getLogger("esb.audit.sender")
#: the largest UDP payload over IPv4 (65535 - 8 - 20): a longer message is truncated (RFC 5426 3.2)
MAX_DATAGRAM = 65507
#: seconds a new TLS connection is given for the ARR to refuse it (see TlsTransport._accepted)
SETTLE = 0.25


class AuditTransportError(EsbError):
    """The Audit Record Repository could not be reached or dropped the connection."""


def _printable(text: str, limit: int) -> str:
    """RFC 5424 header fields are PRINTUSASCII (33-126); anything else becomes '_'; empty is NILVALUE."""
    cleaned = "".join(ch if 33 <= ord(ch) <= 126 else "_" for ch in text)[:limit]
    return cleaned or "-"


def timestamp(moment: dt.datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"


def message(
    xml: str, *, record_id: str, created_at: dt.datetime, hostname: str, app_name: str, procid: str | None = None
) -> bytes:
    """One RFC 5424 syslog message carrying one audit message."""
    pri = FACILITY_AUTH * 8 + SEVERITY_NOTICE
    header = (
        f"<{pri}>1 {timestamp(created_at)} {_printable(hostname, 255)} {_printable(app_name, 48)} "
        f'{_printable(procid or str(os.getpid()), 128)} {MSGID} [{SD_ID} id="{_sd_value(record_id)}"] '
    )
    return header.encode("ascii") + BOM + xml.encode("utf-8")


def _sd_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def octet_counted(msg: bytes) -> bytes:
    """RFC 5425 section 4.3: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(msg)).encode("ascii") + b" " + msg


class Transport(Protocol):
    async def send(self, messages: list[bytes]) -> None:
        """Send every message or raise AuditTransportError (then none counts as sent)."""
        ...

    async def close(self) -> None: ...


def client_context(config: AuditConfig) -> ssl.SSLContext:
    """TLS 1.2+, the ARR's certificate checked against ``cafile`` and the host name; our certificate if set."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.cafile or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if config.certfile:
            context.load_cert_chain(config.certfile, config.keyfile or None)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f for f in (config.cafile, config.certfile, config.keyfile) if f) or "the system CAs"
        raise ConfigError(f"audit: the TLS files for {config.repository} cannot be loaded ({files}): {exc}") from None
    return context


class TlsTransport:
    """One long-lived TLS connection to the ARR, opened on demand and again after the ARR closed it."""

    def __init__(self, repository: Repository, context: ssl.SSLContext, *, timeout: float = 10.0) -> None:
        self.repository, self.context, self.timeout = repository, context, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    def _usable(self) -> bool:
        return not (self._writer is None or self._reader is None or self._writer.is_closing() or self._reader.at_eof())

    async def _connect(self) -> asyncio.StreamWriter:
        await asyncio.sleep(0)  # let a close the ARR sent meanwhile reach the reader first
        if self._usable():
            assert self._writer is not None
            return self._writer
        await self.close()
        repo = self.repository
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(repo.host, repo.port, ssl=self.context, server_hostname=repo.host),
                self.timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise AuditTransportError(f"cannot connect to {repo}: {_reason(exc)}") from None
        self._reader, self._writer = reader, writer
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await self._accepted(reader)
        return writer

    async def _accepted(self, reader: asyncio.StreamReader) -> None:
        """Wait ``SETTLE`` seconds for the ARR to refuse us after the handshake.

        With TLS 1.3 the server checks the client certificate after the client
        considers the handshake done, and says no in an alert the client only
        reads later: without this wait, the first batch would be written into
        a connection the ARR already refused, and counted as sent.
        """
        try:
            data = await asyncio.wait_for(reader.read(1), SETTLE)
        except TimeoutError:
            return  # nothing said: accepted
        except (OSError, ssl.SSLError) as exc:
            await self.close()
            raise AuditTransportError(f"{self.repository} refused the connection: {_reason(exc)}") from None
        if not data:
            await self.close()
            raise AuditTransportError(f"{self.repository} closed the connection after the handshake")

    async def send(self, messages: list[bytes]) -> None:
        writer = await self._connect()
        try:
            for msg in messages:
                writer.write(octet_counted(msg))
            await asyncio.wait_for(writer.drain(), self.timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            await self.close()
            raise AuditTransportError(f"sending to {self.repository} failed: {_reason(exc)}") from None
        if not self._usable():  # the ARR closed while we wrote: what it read is unknown
            await self.close()
            raise AuditTransportError(f"{self.repository} closed the connection")

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2.0)
        except (OSError, ssl.SSLError, TimeoutError):
            pass


class UdpTransport:
    """One datagram per message (RFC 5426); the ARR's absence goes unnoticed, by design of the protocol."""

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self._sock: socket.socket | None = None

    async def send(self, messages: list[bytes]) -> None:
        repo = self.repository
        try:
            if self._sock is None:
                family, kind, proto, _, address = (await asyncio.get_running_loop().getaddrinfo(
                    repo.host, repo.port, type=socket.SOCK_DGRAM))[0]  # fmt: skip
                self._sock = socket.socket(family, kind, proto)
                self._sock.connect(address)
            for msg in messages:
                if len(msg) > MAX_DATAGRAM:  # RFC 5426 3.2: it may be truncated; the full record stays here
                    log.warning("audit message of %d bytes truncated to %d for UDP", len(msg), MAX_DATAGRAM)
                    msg = msg[:MAX_DATAGRAM]
                self._sock.send(msg)
        except OSError as exc:
            await self.close()
            raise AuditTransportError(f"sending to {repo} failed: {_reason(exc)}") from None

    async def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def transport_for(config: AuditConfig) -> Transport | None:
    repo = config.repository
    if repo is None:
        return None
    if repo.transport == "udp":
        return UdpTransport(repo)
    return TlsTransport(repo, client_context(config), timeout=config.connect_timeout)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
