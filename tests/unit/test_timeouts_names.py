"""An async job stuck past its time limit is named in the log by its own jid, not by the
run id that tells apart runs sharing a jid (``report-9#2``); the give-up still gets the
run id, which is what finds the run."""

from __future__ import annotations

import logging
import threading

import pytest

from sidequest.worker import timeouts
from sidequest.worker.timeouts import Timeouts


def test_a_stuck_async_run_is_logged_by_its_jid(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(timeouts, "GRACE", 0.0)
    caplog.set_level(logging.ERROR, logger="sidequest")
    given_up: list[str] = []
    done = threading.Event()

    def on_stuck(rid: str) -> None:
        given_up.append(rid)
        done.set()

    watcher = Timeouts(on_stuck=on_stuck)
    watcher.watch_async("report-9#2", 0.0, "report-9")
    assert done.wait(5), "the timeouts thread gave nothing up"
    assert given_up == ["report-9#2"]
    [record] = [r for r in caplog.records if "did not stop" in r.getMessage()]
    assert "job report-9 did not stop" in record.getMessage()
    assert "#2" not in record.getMessage() and record.jid == "report-9"
