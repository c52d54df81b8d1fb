"""A TTIN while a worker starts prints every thread's stack instead of stopping the process
(TTIN's default action), in a -P child too, which inherits its supervisor's registration."""

from __future__ import annotations

import subprocess
import sys

FORKED_CHILD = """
import os, signal, sys, time
from sidequest import interrupts

interrupts.hold_dump()  # the supervisor, loading the app
signal.signal(signal.SIGTTIN, lambda *_: None)  # then its own handler (it forwards TTIN)
pid = os.fork()
if pid == 0:  # a worker process: TTIN's default until its worker runs, as supervisor.py does
    signal.signal(signal.SIGTTIN, signal.SIG_DFL)
    interrupts.hold_dump()
    os.kill(os.getpid(), signal.SIGTTIN)
    time.sleep(0.2)
    os._exit(0)
_, status = os.waitpid(pid, os.WUNTRACED)
if os.WIFSTOPPED(status):
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print("stopped" if os.WIFSTOPPED(status) else "ran on")
"""


def test_a_thread_dump_in_a_starting_child_answers_rather_than_stops_it() -> None:
    done = subprocess.run([sys.executable, "-c", FORKED_CHILD], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.stdout.strip() == "ran on", done.stdout + done.stderr
    assert "most recent call first" in done.stderr, done.stderr
