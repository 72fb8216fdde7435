"""``stomp:`` URIs and options: what lint says about wrong ones, credentials, header mapping. No broker needed."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.stomp.connection import Received
from adapters.stomp.consumer import charset_of, dedup_key, to_exchange
from adapters.stomp.options import StompOptions
from adapters.stomp.producer import outbound_headers
from esb.cli import main_group
from esb.exchange import DEDUP_KEY, Exchange
from esb.routes.lint import lint
from esb.runtime.context import EngineContext
from esb.settings import Settings
from esb.uri import UriError
from tests.conftest import write_routes
from tests.tlsutil import make_certs


def route(route_id: str, source: str, target: str = "log: {message: got it}") -> str:
    return f'route:\n  id: {route_id}\n  from: "{source}"\n  steps:\n    - {target}\n'


def lint_messages(tmp_path: Path, settings: Settings, routes: dict[str, str]) -> list[str]:
    write_routes(tmp_path / "routes", routes)
    return [str(e) for e in lint([tmp_path / "routes"], EngineContext(settings)).errors]


def test_lint_names_the_option_and_the_fix(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    b = "stomp://127.0.0.1:61613"
    errors = lint_messages(
        tmp_path,
        make_settings(),
        {
            "typo": route("typo", f"{b}/queue/a?prefech=5"),
            "nodest": route("nodest", f"{b}/orders"),
            "durq": route("durq", f"{b}/queue/a?durable=true"),
            "cid": route("cid", f"{b}/topic/t?client_id=x"),
            "sides": route("sides", f"{b}/queue/a?receipt_timeout=5s", f'to: "{b}/queue/b?prefetch=5"'),
            "fail": route("fail", f"{b}/queue/a?failover=h2:61613,h3&reconnect_delay=5s&reconnect_max=1s"),
            "creds": route("creds", f"{b}/queue/a?login=u"),
            "both": route("both", "stomp://u:p@127.0.0.1:61613/queue/a?passcode=x"),
            "tls": route("tls", f"{b}/queue/a?cafile=/no/such.pem"),
            "nohost": route("nohost", "stomp:/queue/a"),
            "temp": route("temp", f"{b}/temp-queue/r?prefetch=0"),
        },
    )
    text = "\n".join(errors)
    assert re.search(r"typo\.yaml:3:\d+: .*unknown option 'prefech' \(did you mean 'prefetch'\?\)", text), text
    assert "destination '/orders' must be the URI path /queue/NAME or /topic/NAME" in text
    assert "durable=true is for topic subscriptions (/topic/NAME)" in text
    assert "option 'client_id' only names a durable subscriber" in text
    assert "option 'receipt_timeout' applies to 'to' endpoints only" in text
    assert "option 'prefetch' applies to 'from' endpoints only" in text
    assert "failover entry 'h3' must be HOST:PORT" in text
    assert "reconnect_max (1s) must not be shorter than reconnect_delay (5s)" in text
    assert "option 'login' needs 'passcode' too (or write stomp://USER:PASSWORD@host)" in text
    assert "credentials are given both in the URI and as option 'passcode'" in text
    assert "option 'cafile' needs tls=true" in text and "no such file '/no/such.pem'" in text
    assert "needs a broker host" in text
    assert "'/temp-queue/r' is a temporary destination" in text
    assert "option 'prefetch' must be at least 1 (got 0)" in text
    assert len(errors) == 15, errors


def test_credentials_come_from_the_userinfo_and_never_show_in_where(make_settings: Callable[..., Settings]) -> None:
    context = EngineContext(make_settings())
    _, endpoint = context.endpoint("stomp://esb%40hosp:p%3Ass@mq.example.org/topic/empi.events?durable=true")
    options: StompOptions = endpoint.options
    assert (options.login, options.passcode, options.port) == ("esb@hosp", "p:ss", 61613)
    assert options.where == "stomp://mq.example.org:61613/topic/empi.events"
    assert options.brokers == [("mq.example.org", 61613)]
    _, endpoint = context.endpoint("stomp://a:61613/queue/q?failover=b:61614,[::1]:61615")
    assert endpoint.options.brokers == [("a", 61613), ("b", 61614), ("::1", 61615)]


def test_env_interpolation_fills_the_passcode(
    tmp_path: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MQ_PASS", "s3cret")
    write_routes(tmp_path / "routes", {"env": route("env", "stomp://esb:${MQ_PASS}@127.0.0.1:61613/queue/in")})
    result = lint([tmp_path / "routes"], EngineContext(make_settings()))
    assert result.errors == []
    assert result.routes[0].endpoint.options.passcode == "s3cret"


def test_a_bad_listener_uri_is_refused_when_its_producer_is_made(make_settings: Callable[..., Settings]) -> None:
    """Listener URIs (config/listeners.yaml) are not linted like routes: the adapter checks them itself."""
    context = EngineContext(make_settings())
    with pytest.raises(UriError, match="destination '/empi.events' must be the URI path"):
        context.producer("stomp://127.0.0.1:61613/empi.events")


def test_tls_files_that_do_not_load_are_reported(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    errors = lint_messages(
        tmp_path,
        make_settings(),
        {
            "good": route("good", f"stomp://127.0.0.1:61614/queue/a?tls=true&cafile={certs.ca}"),
            "bad": route("bad", f"stomp://127.0.0.1:61614/queue/a?tls=true&cafile={bad}"),
        },
    )
    assert len(errors) == 1 and "bad.yaml" in errors[0] and "cannot load the TLS files" in errors[0], errors


def test_inbound_frame_headers_become_stomp_headers_and_the_dedup_key() -> None:
    options = StompOptions(host="h", destination="/queue/a")
    frame = Received(
        {
            "destination": "/queue/a", "message-id": "T_1@@s@@1", "subscription": "esb-r", "redelivered": "true",
            "ack": "T_1@@s@@1", "content-length": "9", "content-type": "text/plain; charset=GB18030",
            "correlation-id": "c-7", "reply-to": "/queue/replies", "esb-message-id": "d-42", "x-site": "north",
        },
        "王小明".encode("gb18030"),
    )  # fmt: skip
    exchange = to_exchange(frame, options, "rabbitmq")
    assert exchange.headers["stomp-destination"] == "/queue/a"
    assert exchange.headers["stomp-redelivered"] == "true"
    assert exchange.headers["stomp-correlation-id"] == "c-7" and exchange.headers["stomp-reply-to"] == "/queue/replies"
    assert exchange.headers["stomp-x-site"] == "north"
    assert "stomp-ack" not in exchange.headers and "stomp-content-length" not in exchange.headers
    assert exchange.headers["charset"] == "GB18030" and exchange.text == "王小明"
    assert exchange.properties[DEDUP_KEY] == "esb-message-id:d-42"


def test_dedup_key_falls_back_to_stable_ids_only() -> None:
    assert dedup_key({"amqp-message-id": "a1", "message-id": "T_x"}, "esb-message-id", "rabbitmq") == (
        "amqp-message-id:a1"
    )
    assert dedup_key({"message-id": "T_sub@@session@@1"}, "esb-message-id", "rabbitmq") is None
    assert dedup_key({"message-id": "ID:host-1:1:1:1:1"}, "esb-message-id", "activemq") == (
        "message-id:ID:host-1:1:1:1:1"
    )
    assert dedup_key({"order-no": "o-9", "esb-message-id": "d-1"}, "order-no", "rabbitmq") == "order-no:o-9"
    assert dedup_key({"esb-message-id": "d-1"}, "", "rabbitmq") is None
    assert charset_of("application/json") is None


def test_outbound_headers_forward_what_belongs_to_the_message() -> None:
    options = dataclasses.replace(
        StompOptions(host="h", destination="/topic/t"), forward_headers=("empi-event", "stomp-destination")
    )
    exchange = Exchange(
        body=b"{}",
        headers={
            "stomp-destination": "/queue/a", "stomp-message-id": "T_1", "stomp-subscription": "s",
            "stomp-redelivered": "true", "stomp-esb-message-id": "upstream", "stomp-correlation-id": "c-7",
            "stomp-x-site": "north", "content-type": "application/json", "empi-event": "merged",
            "empi-person": "P1", "esb-delivery-id": "d-42",
        },
    )  # fmt: skip
    headers = outbound_headers(exchange, options)
    assert headers == {
        "correlation-id": "c-7",
        "x-site": "north",
        "empi-event": "merged",
        "content-type": "application/json",
        "persistent": "true",
        "esb-message-id": "d-42",
    }
    transient = dataclasses.replace(options, persistent=False, content_type="text/plain")
    assert "persistent" not in outbound_headers(exchange, transient)
    assert outbound_headers(exchange, transient)["content-type"] == "text/plain"


def test_esb_docs_stomp_documents_every_option() -> None:
    result = CliRunner().invoke(main_group, ["--json", "docs", "stomp"])
    assert result.exit_code == 0, result.output
    reference = json.loads(result.stdout)
    assert reference["uri"].startswith("stomp://[USER:PASSWORD@]HOST:PORT/queue/NAME")
    assert reference["consumer"] and reference["producer"]
    assert all(o["doc"] for o in reference["options"])
    names = {o["name"] for o in reference["options"]}
    assert {"failover", "heartbeat", "prefetch", "durable", "selector", "dedup_header", "receipt_timeout"} <= names
