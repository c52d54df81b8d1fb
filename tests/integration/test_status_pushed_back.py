"""A thread job that stores its status and is still running at a stop's deadline goes back to
its queue: its status says queued, not running (nobody may run it again for a long while)."""

from __future__ import annotations

import threading

from helpers import running_worker, wait_for
from sidequest import Job, metrics
from sidequest.api import JobStatus

started = threading.Event()
release = threading.Event()


class Export(Job):
    store_result = True

    def perform(self) -> None:
        started.set()
        release.wait(10)  # past the stop's deadline


def test_a_job_pushed_back_at_a_stop_is_queued_again(redis_url: str) -> None:
    started.clear()
    release.clear()
    jid = Export.perform_async()
    assert jid
    try:
        with running_worker(timeout=0.5):
            assert started.wait(10)
            wait_for(lambda: JobStatus(jid).state == "running", what="the job running")
        assert JobStatus(jid).state == "queued"  # the stop is over, the job still runs
    finally:
        release.set()  # the abandoned thread ends: its end is recorded while Redis is here
    wait_for(lambda: JobStatus(jid).state == "succeeded", what="the abandoned run's end")
    metrics.recorder.close()  # and its count written now, not to a later test's Redis
