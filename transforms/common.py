"""Small transforms every deployment needs."""

from __future__ import annotations

from esb.exchange import Exchange


def identity(exchange: Exchange) -> None:
    """Leave the message as it is (a placeholder in route templates)."""
    return None


def upper(exchange: Exchange) -> str:
    """Upper-case a text body; used by examples and route tests."""
    return exchange.text.upper()
