"""A -P child's reports to its supervisor: each kind once, so a stop is never lost behind
many quiets (the supervisor reads a short report); what a dead child's replacement is
given."""

from __future__ import annotations

import logging
import os
import time

import pytest

from sidequest.config import build
from sidequest.worker import identity
from sidequest.worker.supervisor import (
    HANDED_ON,
    QUIETED,
    STOPPED,
    Child,
    Supervisor,
    _Running,
)


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


def _dead(supervisor: Supervisor, started: float, gone: tuple[str, ...] = (),
          quiet: bool = False) -> tuple[float, int, tuple[str, ...], bool]:
    """The replacement the supervisor plans for a child (pid 4242) that exited with 1."""
    reads, writes = os.pipe()
    os.close(writes)
    os.set_blocking(reads, False)
    child = _Running(started, 0, "n" * 12, reads, quiet, gone)
    supervisor._replace(4242, child, 256, child.told())
    return supervisor._due.pop()


def test_a_replacement_that_dies_at_start_hands_on_the_jobs_it_was_to_recover() -> None:
    """Its on_startup hook failed before it recovered the child it replaced: that child's
    jobs then waited for a lease to run out."""
    supervisor = Supervisor(build(), 2, lambda child: 0)
    itself = identity.of(4242, "n" * 12)
    _, _, gone, _ = _dead(supervisor, time.monotonic(), gone=("first:1:dead",))
    assert gone == (itself, "first:1:dead")
    # In a crash loop the list does not grow for good: the latest few.
    many = tuple(f"old:{n}:dead" for n in range(20))
    _, _, gone, _ = _dead(supervisor, time.monotonic(), gone=many)
    assert gone == (itself, *many[:HANDED_ON - 1])
    # One that lived a while had recovered them: only its own identity goes on.
    _, _, gone, _ = _dead(supervisor, time.monotonic() - 3600, gone=("first:1:dead",))
    assert gone == (itself,)


def test_a_child_of_a_quieted_group_is_replaced_quiet_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(build(), 2, lambda child: 0)
    supervisor.quieted = True  # a TSTP passed on to the children: they report nothing
    with caplog.at_level(logging.WARNING, logger="sidequest"):
        *_, quiet = _dead(supervisor, time.monotonic() - 3600)
    assert quiet and "starting another, quiet as it was" in caplog.text
