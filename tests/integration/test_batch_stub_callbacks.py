"""A batch callback that another process runs (a push-only stub's job, a Ruby one say): it
goes to the stub's queue, by class or by name, and a child batch's such callback is not a
job of the parent, which would otherwise wait forever for a job that never reports."""

from __future__ import annotations

import json
import threading

import redis

from helpers import running_worker, wait_for
from sidequest import Batch, Job, keys
from sidequest.api import BatchStatus

succeeded = threading.Event()


class RubyReport(Job):
    """A stub: no perform, the Ruby process that serves "ruby-side" runs it."""

    name = "StubCallbacks::RubyReport"
    queue = "ruby-side"


class Member(Job):
    def perform(self, n: int) -> None:
        pass


class ParentDone(Job):
    def perform(self) -> None:
        succeeded.set()


def test_a_childs_stub_callback_does_not_hold_the_parent(redis_url: str,
                                                         r: redis.Redis) -> None:
    succeeded.clear()
    parent = Batch(on_success=(ParentDone, []))
    with parent.jobs():
        Member.perform_async(0)
        child = Batch(parent=parent, on_success=(RubyReport, ["child done"]))
        with child.jobs():
            Member.perform_async(1)
    with running_worker():  # serves "default" only: nobody here runs the Ruby job
        assert succeeded.wait(20), BatchStatus(parent.bid)
    status = BatchStatus(parent.bid)
    assert status.success and status.pending == 0 and status.total == 2  # Member 0, child
    (raw,) = r.lrange(keys.queue("ruby-side"), 0, -1)
    pushed = json.loads(raw)
    assert pushed["class"] == "StubCallbacks::RubyReport" and pushed["args"] == ["child done"]
    assert "sq_batch" not in pushed  # it reports to no batch


def test_a_callback_named_like_a_loaded_stub_goes_to_the_stubs_queue(
        redis_url: str, r: redis.Redis) -> None:
    batch = Batch(on_complete=("StubCallbacks::RubyReport", [7]))
    with batch.jobs():
        Member.perform_async(0)
    with running_worker():
        wait_for(lambda: r.llen(keys.queue("ruby-side")), what="the callback pushed")
    (raw,) = r.lrange(keys.queue("ruby-side"), 0, -1)
    assert json.loads(raw)["args"] == [7]
    assert not r.llen(keys.queue("default"))
