"""Python transforms and predicates that route files in the tests refer to."""

from __future__ import annotations

import asyncio

from esb.exchange import Exchange

CALLS: list[str] = []


async def slow(exchange: Exchange) -> None:
    """Hold the exchange a little, to have messages in flight at shutdown."""
    await asyncio.sleep(0.3)
    CALLS.append(exchange.text)


def boom(exchange: Exchange) -> None:
    raise RuntimeError("transform exploded")


def parts(exchange: Exchange) -> list[str]:
    return exchange.text.split(",")
