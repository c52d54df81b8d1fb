"""The thread that renews concurrent-limiter slots outlives an error of its own: ended, it
would leave every slot of the process to lapse while its jobs still run, and the limiter
would admit others beside them."""

from __future__ import annotations

import threading

from helpers import wait_for
from sidequest.limiter_renewal import Renewer


class Flaky:
    """A limiter whose slot lapsed, and whose name fails once when the write-back is
    reported (any error of the renewing thread's own would do)."""

    _interval_ms = 300

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._named = 0
        self.lock = threading.Lock()

    @property
    def name(self) -> str:
        self._named += 1
        if self._named == 1:
            raise RuntimeError("an error of the renewing thread's own")
        return "flaky"

    def renew(self, tokens: list[str], mode: str = "renew") -> list[str]:
        with self.lock:
            self.calls.append(mode)
        return list(tokens)  # "renew": every token lapsed; "reclaim": written back

    def _give_back(self, token: str) -> None:
        pass


def test_the_renewing_thread_goes_on_after_an_error_of_its_own() -> None:
    renewer, made = Renewer(), Flaky()
    renewer.hold(made, "token")
    try:
        # The first write-back's report raised; the rounds after it still come.
        wait_for(lambda: made.calls.count("reclaim") >= 3, 10, "renewal rounds after the error")
    finally:
        renewer.drop(made, "token")
