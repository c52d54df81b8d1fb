"""Flow control for the Manager: how many fetched jobs to hold, and how many processor
threads take jobs. Pure arithmetic on what the fetcher thread measures; no Redis, no threads.

1. The buffer. Hold enough fetched jobs to keep the threads busy while the next round trip
   is on its way, at most ``prefetch``: what the threads finish in twice a round trip, or in
   ``HOLD`` when Redis is near. Short jobs, and a slow network, get a deep buffer; slow jobs
   get none, so one process does not sit on work an idle one could run.
   The rate that sizes the buffer is itself held down by a buffer too small for the round
   trip (the threads wait for each fetch), so at the start, or when the network slows, the
   buffer would grow only a little each window. Instead, whenever half the threads or more
   wait with nothing held for a refill that comes back full, after a full one (Redis had
   more all along), the buffer doubles at once, as a TCP window does in slow start: through
   a 3 ms round trip it reaches its size within a few fetches, not a few windows. The
   window's figure brings it back down if it overshot.
2. The active threads. Under CPython's global interpreter lock, threads that mostly compute
   take turns; past a handful, each extra one adds hand-offs of the lock (each a context
   switch, several per job) without finishing jobs any sooner. On a 2-core machine, jobs of
   one Redis call ran about 25 % faster on 3 threads than on 10. So while the process is
   busy computing (its CPU time is most of the wall time), the number of threads that take
   jobs is hill-climbed on the completion rate: step, keep the direction while the rate
   rises, turn when it falls. While jobs mostly wait (network, disk, sleep), CPU time is
   low and every thread takes jobs, since there more threads mean more jobs in flight.
   The climb starts from a few threads, not from all of them: stepping down one thread a
   window from 10 took 2 s, longer than a short burst lasts, while starting at 2 and
   climbing finds 1-5 threads (the best for short jobs on 2-core machines) within a few
   windows, and jobs that need more threads raise the rate as each one is added.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Longest a held job waits for a thread when Redis is near, in seconds.
HOLD = 0.02
#: Seconds over which rates are measured: long enough to mean something at any job rate,
#: short enough that a burst of small jobs is paced within a second.
WINDOW = 0.1
#: Process CPU seconds per wall second above which the lock is the bottleneck. Measured on
#: jobs of one Redis call: 1.0-1.1 at 2-10 threads; jobs that wait on I/O sit far below.
BUSY = 0.6
#: Fewest active threads. One can be the best: on a 2-core AMD EPYC host, one-INCR jobs
#: drained with the climb allowed down to one thread (and starting at 2) took a median 9 %
#: less CPU per job than with a floor of 2 (starting at 3), at 18 of 22 alternated pairs,
#: with under one involuntary context switch per job instead of 1.1, and no lower rate.
#: Where more threads are faster, the climb turns back up from one at its first window.
FLOOR = 1
#: Active threads when the process becomes busy computing; the climb goes up from here.
START = 2
#: Fewest completions in a window for its rate to be worth comparing.
MIN_JOBS = 20
#: The first window, from the first fetch that brought jobs, is shorter: a drain of a few
#: thousand short jobs is over in a few windows, and spends the first one on every thread.
FIRST_WINDOW = 0.03


class Flow:
    def __init__(
        self,
        concurrency: int,
        prefetch: int,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.adaptive = adaptive and concurrency > FLOOR
        # Jobs to hold besides the running ones. Before the first window there is no rate
        # to size it by: one job per thread, so that the first round trips (through a slow
        # network, one per batch of threads) do not leave the threads waiting while the
        # rate is measured; slow jobs shrink it to nothing at the first window.
        self.buffer = min(prefetch, concurrency)
        self.active = concurrency  # threads that take jobs
        self.rtt = 0.0  # seconds per fetch round trip (moving average)
        self._clock, self._cpu = clock, cpu
        self._rate = 0.0  # jobs finished per second (moving average)
        self._started, self._cpu_started = clock(), cpu()
        self._finished = 0
        self._step = 1  # the hill climb's direction: up from START
        self._last_rate: float | None = None
        self._starved = False  # threads waited for a refill this window
        self._window = WINDOW  # this window's length: FIRST_WINDOW for the first
        self._opened = False  # jobs were fetched: windows measure work, not start-up

    def starved(self) -> None:
        """Threads waited for a refill while the queue still had jobs: hold twice as many."""
        self._starved = True
        self.buffer = min(self.prefetch, 2 * self.buffer)

    def open(self) -> None:
        """The first jobs were fetched, or the first one finished (a worker fed one job at a
        time through its wait in Redis never fetches a batch): the first window starts now.
        Counted from the start, the time and CPU spent starting up (imports, connections)
        and waiting for work would read as a slow rate."""
        if not self._opened:
            self._opened, self._window = True, FIRST_WINDOW
            self._started, self._cpu_started, self._finished = self._clock(), self._cpu(), 0

    def round_trip(self, seconds: float) -> None:
        self.rtt = 0.8 * self.rtt + 0.2 * seconds

    def observe(self, finished: int) -> bool:
        """Count ``finished`` jobs; at the end of a window, adapt the buffer and the active
        threads and return True."""
        if not self._opened:
            return False
        now = self._clock()
        self._finished += finished
        elapsed = now - self._started
        if elapsed < self._window:
            return False
        self._window = WINDOW
        cpu = self._cpu()
        busy = (cpu - self._cpu_started) / elapsed
        rate = self._finished / elapsed
        self._started, self._cpu_started, self._finished = now, cpu, 0
        # Up at once, down gently: a burst gets its buffer in one window, and one slow
        # window does not starve the threads.
        self._rate = max(rate, 0.5 * self._rate + 0.5 * rate)
        sized = min(self.prefetch, int(self._rate * max(2 * self.rtt, HOLD)))
        # A window in which threads waited measured a rate the buffer held down: keep what
        # the doubling reached.
        self.buffer = max(sized, self.buffer) if self._starved else sized
        self._starved = False
        if self.adaptive:
            self._pace(rate, busy, finished_enough=rate * elapsed >= MIN_JOBS)
        return True

    def _pace(self, rate: float, busy: float, finished_enough: bool) -> None:
        if busy < BUSY or not finished_enough:
            # Waiting, not computing (or idle): every thread, ready for what comes next.
            self.active, self._step, self._last_rate = self.concurrency, 1, None
            return
        if self._last_rate is None:
            # Just became busy: start the climb from a few threads. This window's rate,
            # measured with every thread, is not compared with the next one's (0: none yet).
            self.active = max(FLOOR, min(self.concurrency, START))
            self._last_rate = 0.0
            return
        if self._last_rate and rate < self._last_rate:
            self._step = -self._step  # the last step made things worse: turn back
        self._last_rate = rate
        self.active = max(FLOOR, min(self.concurrency, self.active + self._step))
