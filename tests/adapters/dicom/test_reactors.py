"""pynetdicom's loops wake for their work: with a 2 s idle wait, nothing that has work waits for it.

:mod:`adapters.dicom.reactors` replaces the 1 ms polling sleeps of each
association's two threads by waits that end when there is work. A wake-up
that is missed shows here as a 2 s stall (the idle wait is stretched from
10 ms to 2 s for the test), so each operation is held well under that.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
import time
import types
from collections.abc import Iterator

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from adapters.dicom import network, reactors
from tests.dicom_support import LARGE_CT
from tests.dicom_support import testdata as sample

STRETCHED = 2.0


@pytest.fixture
def stretched(monkeypatch: pytest.MonkeyPatch) -> None:
    assert reactors.install()  # done by adapters.dicom.network already; a second call changes nothing
    monkeypatch.setattr(reactors, "IDLE", STRETCHED)


@pytest.fixture
def scp() -> Iterator[int]:
    ae = AE("SCP")
    ae.add_supported_context(Verification)
    ae.add_supported_context(CTImageStorage)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[network.NODELAY_HANDLER,
                             (evt.EVT_C_STORE, lambda event: 0x0000)])  # fmt: skip
    assert server is not None
    yield int(server.server_address[1])
    ae.shutdown()


def associate(port: int) -> object:
    ae = AE("SCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="SCP", evt_handlers=[network.NODELAY_HANDLER])
    assert assoc.is_established
    return assoc


def test_requests_and_responses_never_wait_for_the_idle_limit(stretched: None, scp: int) -> None:
    from pydicom import dcmread

    image = dcmread(sample(LARGE_CT))
    assoc = associate(scp)
    started = time.perf_counter()
    for _ in range(20):  # each pauses the SCU's reactor (Checkpoint) and wakes both DULs (send_pdu, socket)
        assert assoc.send_c_echo().Status == 0  # type: ignore[attr-defined]
    for _ in range(5):
        assert assoc.send_c_store(image).Status == 0  # type: ignore[attr-defined]
    assert time.perf_counter() - started < STRETCHED  # one missed wake-up alone would take that long
    started = time.perf_counter()
    assoc.release()  # type: ignore[attr-defined]
    # the SCP's reactor notices the peer's A-RELEASE on its idle timer: the one wait allowed
    assert assoc.is_released and time.perf_counter() - started < STRETCHED + 1  # type: ignore[attr-defined]


def test_an_abort_ends_both_sides_at_once(stretched: None, scp: int) -> None:
    assoc = associate(scp)
    started = time.perf_counter()
    assoc.abort()  # type: ignore[attr-defined]
    assert assoc.is_aborted and time.perf_counter() - started < STRETCHED / 2  # type: ignore[attr-defined]


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_each_association_closes_its_eventfd(scp: int) -> None:
    for _ in range(3):  # warm-up: pools, logging and the like open their files once
        associate(scp).release()  # type: ignore[attr-defined]
    gc.collect()
    before = open_descriptors()
    for _ in range(20):
        associate(scp).release()  # type: ignore[attr-defined]
    time.sleep(0.2)  # the SCP's association threads end just after the release
    gc.collect()
    assert open_descriptors() <= before + 2


def test_a_pause_right_after_an_unpause_holds_a_reactor_that_was_woken_but_not_yet_running() -> None:
    """Back-to-back SCU requests: unpause, pause again before the woken reactor thread runs.

    The reactor (a thread doing what pynetdicom's reactor does around its
    checkpoint) must stay paused and say so; a plain ``threading.Event``
    would let it run a turn, and a real reactor would take the response the
    caller is about to wait for. The main thread keeps the GIL from the
    unpause to the pause (a long switch interval), so the woken thread cannot
    get in between: the interleaving the race needs, every time.
    """
    assoc = types.SimpleNamespace(_is_paused=False, dimse=types.SimpleNamespace(msg_queue=queue.Queue()))
    checkpoint = reactors.Checkpoint(assoc)
    checkpoint.clear()
    turns: list[bool] = []

    def reactor() -> None:
        assoc._is_paused = True
        checkpoint.wait()
        turns.append(assoc._is_paused)

    thread = threading.Thread(target=reactor, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not assoc._is_paused and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # now blocked in wait()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        checkpoint.set()
        checkpoint.clear()
    finally:
        sys.setswitchinterval(interval)
    time.sleep(0.2)
    assert turns == [] and assoc._is_paused, "the reactor ran a turn while the caller believed it paused"
    checkpoint.set()
    thread.join(5)
    assert turns == [False], "unpaused, it runs and no longer says it is paused"
