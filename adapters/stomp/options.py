"""Options of ``stomp:`` endpoints, and the lint checks on them.

One ``Options`` class serves both sides, side-specific fields tagged ``side``
as for ``http:`` and ``mllp:``, so lint reports an option set where it means
nothing. The TLS fields have the names and meaning of
:class:`adapters.http.tls.TlsSwitch`, except that the broker is the server
on both sides: we always speak as a client (no ``client_auth``, ``verify``
applies to 'from' and 'to').
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from adapters.http.options import misplaced
from adapters.http.tls import tls_flag_problems
from esb.uri import Duration

#: destination prefixes of RabbitMQ's STOMP plugin and ActiveMQ 5 (``/exchange/`` etc. are RabbitMQ's)
PREFIXES = ("/queue/", "/topic/", "/exchange/", "/amq/queue/", "/temp-queue/", "/temp-topic/", "/reply-queue/")
#: destinations where a durable subscription means something (a queue is durable by itself)
DURABLE_PREFIXES = ("/topic/", "/exchange/")
DEFAULT_PORT = 61613


def _meta(doc: str, side: Literal["from", "to"] | None = None) -> dict[str, str]:
    return {"doc": doc, "side": side} if side else {"doc": doc}


@dataclass(frozen=True, kw_only=True)
class StompOptions:
    host: str = field(default="", metadata=_meta("Broker address."))
    port: int = field(default=DEFAULT_PORT, metadata=_meta("Broker STOMP port."))
    destination: str = field(
        default="",
        metadata=_meta(
            "The URI path: /queue/NAME or /topic/NAME (RabbitMQ also /exchange/NAME[/KEY] and /amq/queue/NAME)."
        ),
    )
    login: str | None = field(
        default=None, metadata=_meta("User name (CONNECT 'login'); also written stomp://USER:PASSWORD@host.")
    )
    passcode: str | None = field(default=None, metadata=_meta("Password (CONNECT 'passcode'); use ${ENV} for it."))
    vhost: str = field(
        default="/",
        metadata=_meta(
            "CONNECT 'host' header: RabbitMQ's virtual host; empty: the broker's host name (STOMP 1.2 default)."
        ),
    )
    failover: tuple[str, ...] = field(
        default=(),
        metadata=_meta("More brokers as HOST:PORT (comma list), tried in order when the first cannot be reached."),
    )
    heartbeat: Duration = field(
        default=Duration(10.0),
        metadata=_meta("STOMP heart-beat both ways, so a dead broker connection is noticed; 0: off."),
    )
    connect_timeout: Duration = field(
        default=Duration(10.0), metadata=_meta("Time allowed to connect and get the broker's CONNECTED frame.")
    )
    reconnect_delay: Duration = field(
        default=Duration(1.0),
        metadata=_meta(
            "First pause before connecting again after the broker went away, doubled per failure up to "
            "reconnect_max; also the first pause before a message the engine did not take is handed back."
        ),
    )
    reconnect_max: Duration = field(default=Duration(30.0), metadata=_meta("Longest pause between reconnections."))
    # -- TLS (TlsSwitch's names; we are the client on both sides) ---------------------
    tls: bool = field(default=False, metadata=_meta("Speak STOMP over TLS (stomp+ssl) to every broker listed."))
    certfile: str | None = field(default=None, metadata=_meta("PEM client certificate chain, when the broker asks."))
    keyfile: str | None = field(
        default=None, metadata=_meta("PEM private key of certfile; default: the key inside certfile.")
    )
    cafile: str | None = field(
        default=None, metadata=_meta("PEM CA bundle to verify the broker; default: the system CAs.")
    )
    verify: bool = field(
        default=True, metadata=_meta("Verify the broker's certificate and host name; false only for tests.")
    )
    # -- consumer ('from:') --------------------------------------------------------
    prefetch: int = field(
        default=100,
        metadata=_meta(
            "Messages the broker hands us before we acknowledge any (RabbitMQ prefetch-count, "
            "ActiveMQ activemq.prefetchSize); also the most handed to the route at once.",
            "from",
        ),
    )
    wait: bool = field(
        default=False,
        metadata=_meta(
            "ACK after the route completed; false: ACK as soon as the message is journaled.",
            "from",
        ),
    )
    durable: bool = field(
        default=False,
        metadata=_meta(
            "Durable topic subscription: the broker keeps messages while we are away (RabbitMQ durable:true "
            "auto-delete:false; ActiveMQ activemq.subscriptionName with the client_id).",
            "from",
        ),
    )
    subscription: str = field(
        default="",
        metadata=_meta(
            "Subscription id (names the durable subscription: keep it stable); empty: esb-ROUTE_ID.", "from"
        ),
    )
    client_id: str = field(
        default="",
        metadata=_meta("ActiveMQ 'client-id' CONNECT header of a durable subscriber; empty: esb-ROUTE_ID.", "from"),
    )
    selector: str = field(
        default="",
        metadata=_meta("JMS message selector (ActiveMQ 'selector' header; RabbitMQ has none and ignores it).", "from"),
    )
    dedup_header: str = field(
        default="esb-message-id",
        metadata=_meta(
            "Inbound header holding the sender's stable message id; a redelivered message with a known id is "
            "ACKed, not processed again. Without it: amqp-message-id, or ActiveMQ's message-id. Empty: off.",
            "from",
        ),
    )
    # -- producer ('to:') ----------------------------------------------------------
    persistent: bool = field(
        default=True, metadata=_meta("Send with persistent:true, so the broker keeps it across its restart.", "to")
    )
    receipt_timeout: Duration = field(
        default=Duration(10.0),
        metadata=_meta(
            "Time allowed for the broker's RECEIPT of a SEND; without it the delivery counts as failed (retried).",
            "to",
        ),
    )
    content_type: str | None = field(
        default=None,
        metadata=_meta("content-type sent; default: the message's content-type header, else none (binary).", "to"),
    )
    forward_headers: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "Message headers sent as STOMP headers of the same name (comma list); stomp-NAME headers are "
            "always sent as NAME, except the broker's own (destination, message-id, subscription, ...).",
            "to",
        ),
    )

    @property
    def brokers(self) -> list[tuple[str, int]]:
        """Host and port of every broker, the URI's first; checked by :func:`problems`."""
        out = [(self.host, self.port)]
        for item in self.failover:
            host, _, port = item.strip().rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out

    @property
    def where(self) -> str:
        """The endpoint for messages, without credentials or options."""
        return f"stomp://{self.host}:{self.port}{self.destination}"


def _failover_problem(item: str) -> str | None:
    host, sep, port = item.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"stomp: failover entry '{item}' must be HOST:PORT (e.g. broker2.example.org:61613)"
    return None


def problems(options: StompOptions, *, consumer: bool) -> list[str]:
    """What lint reports for a ``stomp:`` endpoint on one side."""
    example = "stomp://broker.example.org:61613/queue/orders"
    if not options.host:
        return [f"stomp: needs a broker host, e.g. {example}"]
    found = misplaced(options, consumer=consumer, where="stomp:")
    dest = options.destination
    if not dest.startswith(PREFIXES) or dest.rstrip("/") in {p.rstrip("/") for p in PREFIXES}:
        found.append(
            f"stomp: destination '{dest or '(none)'}' must be the URI path /queue/NAME or /topic/NAME "
            f"(RabbitMQ also /exchange/NAME, /amq/queue/NAME), e.g. {example}"
        )
    if not 0 < options.port < 65536:
        found.append(f"stomp: port must be 1 to 65535 (got {options.port}); the STOMP default is {DEFAULT_PORT}")
    found.extend(p for p in map(_failover_problem, options.failover) if p)
    if (options.login is None) != (options.passcode is None):
        given, missing = ("login", "passcode") if options.passcode is None else ("passcode", "login")
        found.append(f"stomp: option '{given}' needs '{missing}' too (or write stomp://USER:PASSWORD@host)")
    for name in ("connect_timeout", "receipt_timeout", "reconnect_delay"):
        if getattr(options, name) <= 0:
            found.append(f"stomp: option '{name}' must be longer than 0 (got {getattr(options, name):g}s)")
    if options.heartbeat < 0:
        found.append(f"stomp: option 'heartbeat' must be 0 (off) or longer (got {options.heartbeat:g}s)")
    elif 0 < options.heartbeat < 1:
        found.append(f"stomp: option 'heartbeat' below 1s ({options.heartbeat:g}s) keeps brokers busy; use 1s or more")
    if options.reconnect_max < options.reconnect_delay:
        found.append(
            f"stomp: reconnect_max ({options.reconnect_max:g}s) must not be shorter than "
            f"reconnect_delay ({options.reconnect_delay:g}s)"
        )
    if consumer:
        found.extend(_consumer_problems(options))
    found.extend(tls_flag_problems(TlsAsClient.of(options), consumer=False, where="stomp:"))
    return found


def _consumer_problems(options: StompOptions) -> list[str]:
    found = []
    if options.prefetch < 1:
        found.append(f"stomp: option 'prefetch' must be at least 1 (got {options.prefetch})")
    if options.durable and not options.destination.startswith(DURABLE_PREFIXES):
        found.append(
            f"stomp: durable=true is for topic subscriptions (/topic/NAME); a queue such as "
            f"'{options.destination}' keeps its messages anyway, drop the option"
        )
    if options.client_id and not options.durable:
        found.append("stomp: option 'client_id' only names a durable subscriber; add durable=true or drop it")
    if options.destination.startswith(("/temp-queue/", "/temp-topic/", "/reply-queue/")):
        found.append(
            f"stomp: '{options.destination}' is a temporary destination, gone with the connection; "
            "consume a /queue/ or /topic/ instead"
        )
    return found


@dataclass(frozen=True)
class TlsAsClient:
    """The TLS fields as :mod:`adapters.http.tls` reads them: a client that serves no TLS itself."""

    tls: bool
    certfile: str | None
    keyfile: str | None
    cafile: str | None
    verify: bool
    client_auth: str = "none"

    @classmethod
    def of(cls, options: StompOptions) -> TlsAsClient:
        return cls(options.tls, options.certfile, options.keyfile, options.cafile, options.verify)
