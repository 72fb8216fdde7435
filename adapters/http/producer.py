"""The calling side: POST (or another method) the message to a peer, map its status.

2xx is a reply; 408, 429, 5xx and network failures are worth retrying; any
other answer (4xx, an unfollowed redirect) will not get better by itself and
goes to dead letter at once. Redirects are not followed: re-sending a body to
wherever a peer points is a decision for whoever writes the route.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import aiohttp
from yarl import URL

from adapters.http.options import HttpOptions
from esb.components import Producer
from esb.errors import DeliveryError, PermanentDeliveryError
from esb.exchange import Exchange

RETRIED_STATUSES = frozenset({408, 429})
#: how much of a refusing peer's answer goes into the delivery error
ERROR_SNIPPET = 200


def _snippet(body: bytes) -> str:
    text = " ".join(body[: ERROR_SNIPPET * 2].decode("utf-8", errors="replace").split())
    return f": {text[:ERROR_SNIPPET]}" if text else ""


class HttpProducer(Producer):
    def __init__(
        self,
        scheme: str,
        options: HttpOptions,
        ssl_context: Callable[[], ssl.SSLContext] | None = None,
    ) -> None:
        self.options = options
        # the option bounds the call itself; the worker allows a little more before giving up
        self.send_timeout = float(options.timeout) + 5.0
        self.url = URL.build(scheme=scheme, host=options.host, port=options.port, path=options.path or "/")
        #: names the destination in errors; the URI's query (our options) is left out
        self.where = f"{options.method} {self.url}"
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """One pooled session per destination, created inside the running loop."""
        if self._session is None or self._session.closed:
            context: ssl.SSLContext | bool = True
            if self._ssl_context is not None:
                try:
                    context = self._ssl_context()
                except OSError as exc:  # ssl.SSLError included: unreadable or mismatched PEM files
                    raise DeliveryError(f"{self.where}: cannot load TLS files: {exc}") from exc
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context),
                timeout=aiohttp.ClientTimeout(total=float(self.options.timeout)),
            )
        return self._session

    def request_headers(self, exchange: Exchange) -> dict[str, str]:
        o = self.options
        content_type = o.content_type or exchange.headers.get("content-type") or "application/octet-stream"
        headers = {"Content-Type": content_type, **o.fixed_headers}
        for name in o.forward_headers:
            if name in exchange.headers:
                headers[name] = exchange.headers[name]
        return headers

    async def send(self, exchange: Exchange) -> Exchange | None:
        session = self.session()
        try:
            async with session.request(
                self.options.method,
                self.url,
                data=exchange.body,
                headers=self.request_headers(exchange),
                allow_redirects=False,
            ) as answer:
                body = await answer.read()
        except TimeoutError as exc:
            raise DeliveryError(f"{self.where}: no answer within {self.options.timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"{self.where}: {type(exc).__name__}: {exc}") from exc
        status = answer.status
        if 200 <= status < 300:
            headers = {"http-status": str(status)}
            if "Content-Type" in answer.headers:
                headers["content-type"] = answer.headers["Content-Type"]
            return Exchange(body=body, headers=headers)
        text = f"{self.where} answered {status} {answer.reason or ''}".rstrip() + _snippet(body)
        if status in RETRIED_STATUSES or status >= 500:
            raise DeliveryError(text)
        raise PermanentDeliveryError(text)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
