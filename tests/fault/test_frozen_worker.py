"""A job that holds the interpreter in C code for longer than its worker's lease: the worker's
heartbeat cannot renew the lease, and another worker that took it for dead ran the job again
beside the frozen one. The watchdog now kills the frozen worker before its lease runs out,
so the job runs again only after its first run has ended, as after any crash."""

from __future__ import annotations

import subprocess
import sys
import time

import redis

from apps.fault_jobs import HoldGil
from fault.conftest import SpawnWorker
from fault.harness import Ledger
from helpers import wait_for

LEASE = 8.0  # with a 1 s heartbeat: frozen after 5 s without a pulse (watchdog.stall_limit)


def test_a_worker_frozen_past_its_stall_limit_is_killed_before_its_lease_ends(
        spawn: SpawnWorker, sq: str, r: redis.Redis, ledger: Ledger) -> None:
    timers = {"lease_ttl": LEASE, "heartbeat_interval": 1.0}
    frozen = spawn("-c", "2", **timers)
    frozen.wait_registered(r)
    jid = HoldGil.perform_async(40)
    wait_for(lambda: ledger.counts("start"), what="the GIL holder to start")
    started = time.monotonic()
    frozen.proc.wait(LEASE + 5)
    killed = time.monotonic() - started
    assert frozen.proc.returncode == -9
    assert f"worker process {frozen.pid} has run no Python code for 5 s" in frozen.log(200)
    rescuer = spawn("-c", "2", env={"FAULT_NO_SLEEP": "1"}, **timers)
    wait_for(lambda: ledger.done_count() == 1, timeout=LEASE + 15, what="the job run again")
    rescuer.reap()
    print(f"frozen worker killed {killed:.1f} s into the job (lease {LEASE:g} s)")
    assert killed < LEASE - 1  # before its lease could run out: no second run beside it
    runs = [entry for entry in ledger.entries() if entry[1] == jid]
    assert [entry[0] for entry in runs] == ["start", "start", "done"]
    assert runs[1][4] > runs[0][4] + killed - 1  # the second began after the first ended


FREEZES = """
import ctypes, time
from sidequest.worker import watchdog
watchdog.running = lambda: "app.jobs.Hog jid=ab12, app.jobs.Other jid=cd34 \\u00e9"
watchdog.start(60.0, stall=1.5)
time.sleep(2.5)  # Python runs: the pulses carry what it runs
ctypes.PyDLL(None).sleep(20)  # then the interpreter is held in C
"""


def test_the_watchdog_names_the_jobs_the_frozen_worker_was_running() -> None:
    # The worker's own start line for such a job may never be written (its log thread
    # cannot run either): the kill message is where it is named.
    frozen = subprocess.run([sys.executable, "-c", FREEZES], capture_output=True, text=True,
                            timeout=30, check=False)
    assert frozen.returncode == -9, frozen.stderr
    assert ("has run no Python code for 1.5 s" in frozen.stderr
            and "; running at its last pulse, a second or less before: app.jobs.Hog jid=ab12,"
                " app.jobs.Other jid=cd34 ?"
            in frozen.stderr), frozen.stderr
