#!/usr/bin/env python3
"""The background load of bench/latency.py's busy scenarios, in a process of its own (it
must not share the GIL with the latency pusher):

    python bench/load.py SIDEQUEST_REDIS_URL COUNTER_REDIS_URL RATE

pushes no-op jobs into LOAD_QUEUE at RATE jobs/s, a small batch every LOAD_TICK, until
SIGTERM, and after each batch counts it and notes the queue's length in the counter's
database. Started and stopped by ``background_load()``.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ on sys.path, not the repo root that holds the `bench`
# package; src/ too, so that the bench runs even without the editable install.
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import sidequest  # noqa: E402
from bench.harness import BenchError, PrivateRedis, log_tail, terminate  # noqa: E402
from bench.jobs import Noop  # noqa: E402
from sidequest import keys  # noqa: E402

LOAD_QUEUE = "default"
# A batch every 2 ms: steady arrivals, as from many web requests. A job pushed just after a
# batch waits for that batch (the worker runs jobs in the order they came), so coarser
# batches measure the batching, not the worker.
LOAD_TICK = 0.002
LOAD_MAX_LATE = 0.05  # a load tick later than this is dropped, not made up with a burst
PUSHED_KEY = "bench:load:pushed"  # database 1: background jobs pushed so far
QMAX_KEY = "bench:load:qmax"  # database 1: ZSET, longest load queue seen since the reset


def run_load(sq_url: str, counter_url: str, rate: float) -> int:
    """Push no-op jobs into LOAD_QUEUE at ``rate`` jobs/s until SIGTERM; after each batch,
    count it and note the queue's length (right after a push: the longest it gets)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    sidequest.configure(sq_url)
    pusher = Noop.set(queue=LOAD_QUEUE)
    queue_key = keys.queue(LOAD_QUEUE)
    with redis.Redis.from_url(sq_url) as sq, redis.Redis.from_url(counter_url) as counter:
        pushed, owed, start, tick = 0, 0.0, time.monotonic(), 0
        while not stop.is_set():
            tick, late = next_tick(start, tick, stop)
            if late:
                continue  # the missed ticks' jobs are not pushed: the rate achieved says so
            owed += rate * LOAD_TICK  # carried over: any rate, not only multiples of 100
            count = int(owed)
            owed -= count
            if count:
                # No pushed_at: these jobs only count themselves, never a latency entry.
                pusher.perform_bulk([[i] for i in range(pushed, pushed + count)])
                pushed += count
                note_batch(counter, count, int(sq.llen(queue_key)))
    return 0


def next_tick(start: float, tick: int, stop: threading.Event) -> tuple[int, bool]:
    """Sleep until the next tick on the absolute schedule; (its number, True if it came so
    late that it, and any other missed one, is skipped)."""
    tick += 1
    delay = start + tick * LOAD_TICK - time.monotonic()
    if delay > 0:
        stop.wait(delay)
        return tick, False
    if -delay <= LOAD_MAX_LATE:
        return tick, False
    return int((time.monotonic() - start) / LOAD_TICK), True


def note_batch(counter: redis.Redis, count: int, queue_length: int) -> None:
    pipe = counter.pipeline(transaction=False)
    pipe.incrby(PUSHED_KEY, count)
    # GT: keep the longest; the bench deletes the key to start its window afresh.
    pipe.zadd(QMAX_KEY, {"max": queue_length}, gt=True)
    pipe.execute()


@contextlib.contextmanager
def background_load(server: PrivateRedis, rate: int,
                    log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, str(Path(__file__).resolve()), server.url(0), server.url(1),
               str(rate)]
    with open(log_path, "wb") as log:  # the child has its own copy of the descriptor
        # Own session: Ctrl-C reaches only the bench, which stops the load itself.
        proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    except BenchError as exc:
        raise BenchError(f"{exc}\n--- load log ---\n{log_tail(log_path)}") from None
    finally:
        terminate(proc, 5)


def main(argv: list[str]) -> int:
    sq_url, counter_url, rate = argv
    return run_load(sq_url, counter_url, float(rate))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
