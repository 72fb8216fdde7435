"""emit() without a trail keeps events for captured(); with one it queues; it never raises into the caller."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

import esb.audit as audit
from esb.audit import events as e
from esb.audit.model import AuditSource
from esb.audit.store import AuditStore
from esb.audit.trail import AuditTrail


@pytest.fixture
def store() -> AuditStore:
    """No database is touched here: the trails are never started."""
    return AuditStore(sa.create_engine("sqlite://"))


def login(user: str = "alice") -> audit.AuditEvent:
    return e.user_authentication(user=user, success=True, peer_host="127.0.0.1", method="password")


def test_without_a_trail_events_are_captured_in_order() -> None:
    assert audit.installed() is None
    first, second = login("a"), login("b")
    audit.emit(first)
    audit.emit(second)
    assert [ev.record_id for ev in audit.captured()] == [first.record_id, second.record_id]
    audit.clear_captured()
    assert audit.captured() == []


def test_emit_never_raises_and_counts_what_it_could_not_buffer(
    store: AuditStore, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(AuditTrail):
        def put(self, event: audit.AuditEvent) -> None:
            raise RuntimeError("queue gone")

    broken = Broken(store, AuditSource("n"))
    audit.install(broken)
    before = audit.failures()
    try:
        with caplog.at_level(logging.ERROR, logger="esb.audit"):
            audit.emit(login())
    finally:
        audit.uninstall(broken)
    assert audit.failures() == before + 1
    assert "audit event not buffered: RuntimeError" in caplog.text


def test_the_last_installed_trail_takes_the_events(store: AuditStore) -> None:
    one, two = AuditTrail(store, AuditSource("one")), AuditTrail(store, AuditSource("two"))
    audit.install(one)
    audit.install(two)
    try:
        audit.emit(login())
        assert (one.pending, two.pending) == (0, 1)
        audit.uninstall(two)
        audit.emit(login())
        assert (one.pending, two.pending) == (1, 1)
    finally:
        audit.uninstall(one)
        audit.uninstall(two)


def test_guarded_helpers_log_instead_of_failing_the_transaction(caplog: pytest.LogCaptureFixture) -> None:
    @audit.guarded
    def reads_a_bad_request(request: dict[str, str]) -> str:
        return request["missing"]

    before = audit.failures()
    with caplog.at_level(logging.ERROR, logger="esb.audit"):
        assert reads_a_bad_request({}) is None
    assert audit.failures() == before + 1
    assert "audit record of" in caplog.text and "KeyError" in caplog.text
