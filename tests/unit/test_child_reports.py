"""A -P child's reports to its supervisor: each kind once, so a stop is never lost behind
many quiets (the supervisor reads a short report)."""

from __future__ import annotations

import os

from sidequest.worker.supervisor import QUIETED, STOPPED, Child, _Running


def test_many_quiets_then_a_stop_reach_the_supervisor() -> None:
    reads, writes = os.pipe()
    os.set_blocking(reads, False)
    child = Child(0, "abc", (), report_fd=writes)
    for _ in range(500):  # a dashboard's Quiet, sent again and again
        child.heard("TSTP")
    child.heard("TTIN")  # a thread dump: nothing to tell
    child.heard("TERM")
    os.close(writes)
    told = _Running(0.0, 0, "abc", reads, quiet=False).told()
    assert told == QUIETED + STOPPED
