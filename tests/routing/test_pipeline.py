"""The core pipeline end to end over in-process endpoints (direct:, seda:, service:)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from esb.exchange import Exchange
from esb.journal import admin
from esb.runtime.engine import Engine
from tests.conftest import write_routes
from tests.support import StartEngine, wait_for


async def test_transform_direct_service_and_queued_delivery(
    tmp_path: Path, start_engine: Callable[..., Awaitable[Engine]], db_url: str
) -> None:
    write_routes(
        tmp_path / "routes",
        {
            "a": """
                route:
                  id: a
                  from: seda:a
                  steps:
                    - transform: {python: transforms.common:upper}
                    - set-header: {name: x, value: "1"}
                    - to: direct:b
                    - to: seda:c
            """,
            "b": """
                route:
                  id: b
                  from: direct:b
                  steps:
                    - to: service:echo/echo
            """,
            "c": """
                route:
                  id: c
                  from: seda:c
                  steps:
                    - filter: {header: x, equals: "2"}
                    - to: seda:never
            """,
            "never": """
                route:
                  id: never
                  from: seda:never
                  enabled: false
                  steps: []
            """,
        },
    )
    engine = await start_engine(db_url=db_url)
    handler = engine.context.local_endpoints["seda:a"]
    outcome = await handler(Exchange(body=b"hello"), True)
    assert outcome.status == "processed"
    assert outcome.exchange is not None
    assert outcome.exchange.body == b"HELLO"
    assert outcome.exchange.headers["esb-echo"] == "true"

    def settled() -> bool:
        rows = admin.list_messages(engine.journal.engine)
        return {r["route_id"]: r["status"] for r in rows} == {"a": "processed", "b": "processed", "c": "filtered"}

    await wait_for(settled)


async def test_failed_delivery_goes_dead_and_retry_redelivers(
    tmp_path: Path, start_engine: Callable[..., Awaitable[Engine]], db_url: str
) -> None:
    write_routes(
        tmp_path / "routes",
        {
            "src": """
                route:
                  id: src
                  from: seda:src
                  steps:
                    - to: {uri: "seda:late", retry: {max_attempts: 2, delay: 50ms}}
            """,
            "late": """
                route:
                  id: late
                  from: seda:late
                  enabled: false
                  steps: []
            """,
        },
    )
    engine = await start_engine(db_url=db_url)
    outcome = await engine.context.local_endpoints["seda:src"](Exchange(body=b"x"), True)
    assert outcome.status == "processed"
    db = engine.journal.engine
    await wait_for(lambda: len(admin.list_dead(db)) == 1)
    dead = admin.list_dead(db)[0]
    assert dead["attempts"] == 2 and "no route consumes seda:late" in dead["last_error"]

    received: list[bytes] = []

    async def late_consumer(exchange: Exchange, wait: bool) -> object:
        received.append(exchange.body)
        from esb.components import Outcome

        return Outcome("m", "accepted", exchange)

    engine.context.local_endpoints["seda:late"] = late_consumer
    assert admin.retry_dead(db, [dead["id"]]) == [dead["id"]]
    await wait_for(lambda: received == [b"x"])

    def outcomes() -> list[str]:
        shown = admin.get_message(db, dead["message_id"])
        return [a["outcome"] for a in shown["deliveries"][0]["attempt_log"]]

    await wait_for(lambda: len(outcomes()) == 3, what="the third attempt recorded")  # recorded after the send
    assert outcomes() == ["error", "error", "ok"]


async def test_on_error_parks_in_dead_letter_and_retry_reruns_route(
    tmp_path: Path, start_engine: Callable[..., Awaitable[Engine]], db_url: str
) -> None:
    write_routes(
        tmp_path / "routes",
        {
            "strict": """
                route:
                  id: strict
                  from: seda:strict
                  steps:
                    - validate: {xpath: "/order[@id]"}
                    - to: seda:ok
                  on_error:
                    - reply: {code: AE}
                    - to: dead-letter:strict
            """,
            "ok": """
                route:
                  id: ok
                  from: seda:ok
                  enabled: false
                  steps: []
            """,
        },
    )
    engine = await start_engine(db_url=db_url)
    outcome = await engine.context.local_endpoints["seda:strict"](Exchange(body=b"<order/>"), True)
    assert outcome.status == "failed"
    assert outcome.reply == {"code": "AE"}
    db = engine.journal.engine
    dead = admin.list_dead(db)
    assert len(dead) == 1 and dead[0]["destination"] == "dead-letter:strict"
    assert "ValidationError" in dead[0]["last_error"]
    admin.retry_dead(db, [dead[0]["id"]])
    await wait_for(lambda: len(admin.list_messages(db, route="strict")) == 2)
    await wait_for(lambda: all(m["status"] == "failed" for m in admin.list_messages(db, route="strict")))
    replayed = [m for m in admin.list_messages(db, route="strict") if m["replay_of"]]
    assert replayed and replayed[0]["replay_of"] == dead[0]["message_id"]


async def test_split_choice_enrich_wiretap_and_multicast(tmp_path: Path, start_engine: StartEngine) -> None:
    write_routes(
        tmp_path / "routes",
        {
            "orders": """
                route:
                  id: orders
                  from: seda:orders
                  steps:
                    - enrich: service:echo/echo
                    - wiretap: seda:audit
                    - split:
                        xpath: /batch/order
                        steps:
                          - choice:
                              - when: {xpath: "@priority = 'urgent'"}
                                steps:
                                  - to: seda:urgent
                              - otherwise:
                                  - multicast: [seda:routine, seda:audit]
            """,
            "sinks": """
                route:
                  id: sinks
                  from: seda:urgent
                  steps:
                    - log: urgent order
            """,
            "routine": """
                route:
                  id: routine
                  from: seda:routine
                  steps:
                    - log: routine order
            """,
            "audit": """
                route:
                  id: audit
                  from: seda:audit
                  steps:
                    - log: audit copy
            """,
        },
    )
    engine = await start_engine()
    body = b'<batch><order id="1" priority="urgent"/><order id="2"/><order id="3"/></batch>'
    outcome = await engine.context.local_endpoints["seda:orders"](Exchange(body=body), True)
    assert outcome.status == "processed"
    assert outcome.exchange is not None and outcome.exchange.headers["esb-echo"] == "true"
    shown = admin.get_message(engine.journal.engine, outcome.message_id or "")
    destinations = [(d["destination"]) for d in shown["deliveries"]]
    assert sorted(destinations) == sorted(
        ["seda:audit", "seda:urgent", "seda:routine", "seda:audit", "seda:routine", "seda:audit"]
    )
    db = engine.journal.engine
    await wait_for(lambda: len(admin.list_messages(db, route="audit")) == 3)
    await wait_for(lambda: len(admin.list_messages(db, route="routine")) == 2)
    bodies = sorted(m["body"] for m in (admin.get_message(db, r["id"]) for r in admin.list_messages(db, route="sinks")))
    assert bodies == [b'<order id="1" priority="urgent"/>']
