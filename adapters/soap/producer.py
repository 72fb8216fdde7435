"""The calling side: a queued delivery that sends the message's payload as a SOAP request.

The body is the payload element (what a ``soap:`` consumer or a service put
there), its attachments go out as MTOM parts. What the peer says decides the
delivery's fate: a Sender-side Fault (the message is wrong) or a 4xx will not
get better by resending and goes to dead letter at once; a Receiver Fault, a
5xx or no answer is retried with the route's policy.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
from yarl import URL

from adapters.soap.client import call
from adapters.soap.options import SoapOptions
from adapters.soap.wssecurity import WsSigner
from esb.components import Producer
from esb.errors import DeliveryError, PermanentDeliveryError, SoapFaultError
from esb.exchange import Exchange

#: Fault codes that say the request itself is wrong
PERMANENT_CODES = frozenset({"Sender", "MustUnderstand", "VersionMismatch", "DataEncodingUnknown"})


class SoapProducer(Producer):
    def __init__(
        self,
        options: SoapOptions,
        spool_dir: Path,
        ssl_context: Callable[[], ssl.SSLContext] | None = None,
        *,
        signer: WsSigner | None = None,
    ) -> None:
        self.options = options
        #: WS-Security: signs each request (a new Timestamp per attempt)
        self.signer = signer
        # the option bounds the call itself; the worker allows a little more before giving up
        self.send_timeout = float(options.timeout) + 5.0
        scheme = "https" if options.tls else "http"
        self.url = str(URL.build(scheme=scheme, host=options.host, port=options.port, path=options.path or "/"))
        self.spool_dir = spool_dir
        self._ssl_factory = ssl_context
        self._ssl: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """One pooled session per destination, created inside the running loop."""
        if self._session is None or self._session.closed:
            if self._ssl_factory is not None and self._ssl is None:
                try:
                    self._ssl = self._ssl_factory()
                except OSError as exc:  # ssl.SSLError included: unreadable or mismatched PEM files
                    raise DeliveryError(f"SOAP {self.url}: cannot load TLS files: {exc}") from exc
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl or True))
        return self._session

    async def send(self, exchange: Exchange) -> Exchange | None:
        o = self.options
        action = o.action or exchange.headers.get("soap-action", "")
        if not action:
            raise PermanentDeliveryError(
                f"SOAP {self.url}: no action to send; set option 'action' or the message header soap-action"
            )
        try:
            payload, attachments, headers = await call(
                self.url,
                exchange.body,
                action=action,
                attachments=exchange.attachments,
                mtom=o.mtom,
                version=o.version,
                timeout=float(o.timeout),
                session=self.session(),
                ssl=self._ssl,
                spool_dir=self.spool_dir,
                max_xml=o.max_xml,
                max_body=o.max_body,
                wss=self.signer.sign if self.signer is not None else None,
            )
        except SoapFaultError as fault:
            text = f"SOAP {self.url} answered a Fault ({fault.subcode or fault.code}): {fault.reason[:200]}"
            if fault.code in PERMANENT_CODES:
                raise PermanentDeliveryError(text) from fault
            raise DeliveryError(text) from fault
        return Exchange(body=payload, headers=headers, attachments=attachments)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
