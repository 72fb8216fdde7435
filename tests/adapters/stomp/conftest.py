"""Fixtures for the ``stomp:`` tests: the broker from ESB_TEST_STOMP_URL, a peer client, queue clean-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.adapters.stomp.activemq import activemq  # noqa: F401  (a real ActiveMQ, for test_activemq.py)
from tests.adapters.stomp.support import Broker, Client, delete_queues, require_broker, unique


@pytest.fixture
def broker() -> Broker:
    return require_broker()


@pytest.fixture
def queue_name(broker: Broker) -> Iterator[Callable[[str], str]]:
    """``queue_name("orders")`` -> a fresh queue name, deleted from the broker after the test."""
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique(prefix))
        return made[-1]

    yield make
    delete_queues(made)


@pytest.fixture
def client(broker: Broker) -> Iterator[Client]:
    peer = Client(broker)
    yield peer
    peer.close()
