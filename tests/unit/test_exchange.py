"""The Exchange between processor threads and the fetcher (worker/exchange.py): what is
handed in comes out once, and the fetcher is nudged once per low water mark, not per job."""

from __future__ import annotations

import queue

from sidequest.worker.exchange import NUDGE, STOP, WAKE, Exchange


def held(n: int) -> queue.SimpleQueue[int]:
    jobs: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(n):
        jobs.put(i)
    return jobs


def signals(exchange: Exchange) -> list[bytes]:
    found = []
    while not exchange.signals.empty():
        found.append(exchange.signals.get_nowait())
    return found


def test_a_processor_nudges_once_when_the_held_jobs_run_low() -> None:
    exchange = Exchange()
    exchange.idle(b"a", held(10), low=5)  # plenty held: the next round can wait
    assert signals(exchange) == []
    exchange.idle(b"b", held(5), low=5)
    exchange.idle(None, held(0), low=5)  # a nudge is on its way already
    assert signals(exchange) == [NUDGE]
    assert exchange.collect() == (3, 3, [b"a", b"b"])
    exchange.idle(None, held(0), low=5)  # collected: the next low mark nudges again
    assert signals(exchange) == [NUDGE]


def test_an_acknowledgement_wakes_a_dozing_fetcher() -> None:
    exchange = Exchange()
    exchange.dozing = True
    exchange.idle(None, held(10), low=5)  # nothing to send: let it doze
    assert signals(exchange) == []
    exchange.idle(b"a", held(10), low=5)
    assert signals(exchange) == [NUDGE]


def test_a_parked_or_async_jobs_acknowledgement_wakes_a_dozing_fetcher_too() -> None:
    exchange = Exchange()
    exchange.finished(b"awake")  # the fetcher is not dozing: its next round carries it
    assert signals(exchange) == []
    exchange.dozing = True
    exchange.finished(None)
    assert signals(exchange) == []
    exchange.finished(b"a")
    exchange.finished(b"b")  # a nudge is on its way already
    assert signals(exchange) == [NUDGE]


def test_finished_jobs_are_acknowledged_without_counting_an_idle_processor() -> None:
    exchange = Exchange()
    exchange.finished(b"parked")
    exchange.finished(None)
    exchange.idle(b"idle", held(10), low=5)
    assert exchange.collect() == (3, 1, [b"idle", b"parked"])
    assert exchange.collect() == (0, 0, [])


def test_stop_is_seen_by_wait_and_by_collect() -> None:
    exchange = Exchange()
    exchange.signal(WAKE)
    exchange.wait(0.0)
    assert not exchange.stop_asked
    exchange.signal(WAKE)
    exchange.signal(STOP)
    exchange.collect()
    assert exchange.stop_asked
    other = Exchange()
    other.signal(STOP)
    other.wait(1.0)
    assert other.stop_asked
