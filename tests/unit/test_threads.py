"""A worker thread that hits a bug is restarted, not silently lost."""

from __future__ import annotations

import threading

from sidequest.worker.threads import spawn


def test_crashing_loop_is_restarted() -> None:
    calls: list[int] = []
    done = threading.Event()

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        done.set()

    stopping = threading.Event()
    thread = spawn(flaky, "test-flaky", stopping)
    assert done.wait(5), "the loop was not restarted after its exception"
    thread.join(5)
    assert len(calls) == 2 and not thread.is_alive()


def test_stopped_loop_is_not_restarted() -> None:
    stopping = threading.Event()
    calls: list[int] = []

    def crash() -> None:
        calls.append(1)
        stopping.set()
        raise RuntimeError("bug during shutdown")

    spawn(crash, "test-crash", stopping).join(5)
    assert calls == [1]
