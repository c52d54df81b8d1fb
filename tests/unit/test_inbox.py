"""A worker's signal inbox: signals acted on once each, in order, even when a signal's handler
is interrupted by the next one (as a Ctrl-C to a -P group and the supervisor's forward can
do); a supervised process's echo within ECHO is dropped, a later press is not."""

from __future__ import annotations

import time

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
