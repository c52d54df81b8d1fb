"""The strict-priority buffer hands out the highest queue's jobs first, keeps each queue's
own order, passes sentinels through in turn, and blocks like a SimpleQueue."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest

from sidequest.worker.buffer import PriorityBuffer, take_back
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


@pytest.mark.parametrize("strict", [True, False])
def test_take_back_takes_the_last_to_be_handed_out_and_keeps_the_rest_in_order(
        strict: bool) -> None:
    jobs: Any = (PriorityBuffer(["critical", "low"], sentinels=(LISTEN,)) if strict
                 else queue.SimpleQueue())
    for queue_name, raw in [("low", b"l1"), ("critical", b"c1"), ("low", b"l2")]:
        jobs.put(Work(queue_name, raw))
    jobs.put(LISTEN)
    taken = take_back(jobs, 2, keep=LISTEN)
    rest = [jobs.get_nowait() for _ in range(jobs.qsize())]
    if strict:  # handed out c1, l1, l2: the two lowest go back
        assert [w.raw for w in taken] == [b"l1", b"l2"]
        assert [w.raw for w in rest] == [b"c1", b""]
    else:
        assert [w.raw for w in taken] == [b"c1", b"l2"]
        assert [w.raw for w in rest] == [b"l1", b""]
    assert rest[-1] is LISTEN


def test_take_back_never_takes_a_higher_queue_before_a_lower_one() -> None:
    buffer = PriorityBuffer(["critical", "default", "low"], sentinels=(LISTEN,))
    for queue_name, raw in [("critical", b"c1"), ("low", b"l1"), ("critical", b"c2"),
                            ("default", b"d1")]:
        buffer.put(Work(queue_name, raw))
    taken = buffer.take_back(3)  # from the tail, while takers take from the head
    assert [w.raw for w in taken] == [b"c2", b"d1", b"l1"]
    assert buffer.qsize() == 1 and buffer.get().raw == b"c1"
