"""Loaded (through PYTHONPATH) only by worker processes that run under libfaketime.

Debian 12's libfaketime 0.9.10 breaks two things in Python 3.11 (wolfcw/libfaketime #390 and
#426):

- with the monotonic clock faked (its default), ``sem_clockwait(CLOCK_MONOTONIC)`` under every
  timed lock, ``Event.wait`` and ``queue.get(timeout=...)`` gets a deadline the kernel never
  reaches: the process hangs. The tests therefore fake only the wall clock
  (``FAKETIME_DONT_FAKE_MONOTONIC=1``), which is also what a skewed host looks like: its
  monotonic clock is fine, its time of day is off;
- with the monotonic clock left alone, ``time.sleep``, which Python 3.11 implements with
  ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``, fails with EINVAL because libfaketime
  rewrites the absolute deadline as if it were wall-clock time.

So ``time.sleep`` is replaced with a ``select`` timeout (relative, untouched by libfaketime).
Nothing else changes: ``time.time()`` stays shifted, as on a host with a wrong clock.
"""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


time.sleep = _sleep
