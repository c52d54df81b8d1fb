"""A worker's signal inbox: signals acted on once each, in order, even when a signal's handler
is interrupted by the next one (as a Ctrl-C to a -P group and the supervisor's forward can
do); a supervised process's echo within ECHO is dropped, a later press is not."""

from __future__ import annotations

import inspect
import sys
import time
from types import FrameType
from typing import Any

from sidequest.worker.inbox import ECHO, Inbox


def test_a_signal_landing_inside_the_handler_of_the_first_is_its_echo() -> None:
    acted: list[str] = []
    inbox: Inbox

    def act(name: str) -> None:
        if not acted:  # the supervisor's TERM lands while the terminal's INT is handled
            inbox.arrive("TERM")
        acted.append(name)

    inbox = Inbox(act, supervised=True)
    inbox.arrive("INT")
    assert acted == ["INT"]


def test_unsupervised_every_signal_counts_in_order_even_nested() -> None:
    acted: list[str] = []
    inbox: Inbox

    def act(name: str) -> None:
        if name == "INT":
            inbox.arrive("TTIN")  # lands mid-handler: acted on after, not inside
        acted.append(name)

    inbox = Inbox(act, supervised=False)
    inbox.arrive("INT")
    inbox.arrive("TERM")
    assert acted == ["INT", "TTIN", "TERM"]


def test_a_second_press_after_the_echo_window_counts() -> None:
    acted: list[str] = []
    inbox = Inbox(acted.append, supervised=True)
    inbox.arrive("INT")
    inbox.arrive("TERM")  # the echo
    inbox.arrive("TSTP")  # another kind: its own
    deadline = time.monotonic() + ECHO
    while time.monotonic() <= deadline:  # the window is on the monotonic clock itself
        time.sleep(ECHO / 5)
    inbox.arrive("INT")
    assert acted == ["INT", "TSTP", "INT"]



def test_a_signal_landing_as_the_handler_finishes_is_not_lost() -> None:
    """A handler can be interrupted at its last step too, clearing the acting flag."""
    acted: list[str] = []
    inbox = Inbox(acted.append, supervised=False)
    source, first = inspect.getsourcelines(Inbox.arrive)
    clearing = first + next(i for i, text in enumerate(source) if "self._acting = False" in text)
    landed: list[str] = []

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code is not Inbox.arrive.__code__:
            return None
        if event == "line" and frame.f_lineno == clearing and not landed:
            landed.append("TERM")
            inbox.arrive("TERM")  # runs untraced, as a nested signal handler would
        return trace

    sys.settrace(trace)
    try:
        inbox.arrive("INT")
    finally:
        sys.settrace(None)
    assert landed == ["TERM"]
    assert acted == ["INT", "TERM"]
