"""The strict-priority buffer hands out the highest queue's jobs first, keeps each queue's
own order, passes sentinels through in turn, and blocks like a SimpleQueue."""

from __future__ import annotations

import queue
import threading

import pytest

from sidequest.worker.buffer import PriorityBuffer
from sidequest.worker.fetch import Work

LISTEN = Work("", b"")


def test_higher_queues_first_each_in_fetch_order() -> None:
    buffer = PriorityBuffer(["critical", "default", "low"], sentinels=(LISTEN,))
    for queue_name, raw in [("low", b"l1"), ("default", b"d1"), ("low", b"l2"),
                            ("critical", b"c1"), ("default", b"d2"), ("critical", b"c2")]:
        buffer.put(Work(queue_name, raw))
    assert buffer.qsize() == 6
    assert [buffer.get().raw for _ in range(6)] == [b"c1", b"c2", b"d1", b"d2", b"l1", b"l2"]
    with pytest.raises(queue.Empty):
        buffer.get_nowait()


def test_sentinels_and_unknown_queues() -> None:
    buffer = PriorityBuffer(["a", "b"], sentinels=(LISTEN,))
    buffer.put(Work("elsewhere", b"x"))  # a quarantined job from a queue not served
    buffer.put(LISTEN)
    buffer.put(None)
    buffer.put(Work("b", b"y"))
    taken = [buffer.get() for _ in range(4)]
    assert [t.raw if isinstance(t, Work) and t is not LISTEN else t for t in taken] == [
        b"y", LISTEN, None, b"x"]


def test_a_taker_blocks_until_a_job_arrives() -> None:
    buffer = PriorityBuffer(["a"])
    got: list[Work] = []
    taker = threading.Thread(target=lambda: got.append(buffer.get()))
    taker.start()
    buffer.put(Work("a", b"late"))
    taker.join(5)
    assert [w.raw for w in got] == [b"late"]
