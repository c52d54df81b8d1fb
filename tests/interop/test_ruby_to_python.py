"""Ruby Sidekiq enqueues, a Sidequest worker runs: every way Ruby's client can push, and the
payload formats of Sidekiq 7 and 8 (tests/interop/fixtures) read by the Python side."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from sidequest.api import Queue, WorkSet
from sidequest.payload import decode, timestamp
from sidequest.retry import decode_backtrace

FIXTURES = Path(__file__).parent / "fixtures"

PUSH_EVERY_WAY = """
class InteropRecord
  include Sidekiq::Job
end

args = INPUT["args"]
bulk = INPUT["bulk"]
jids = {
  "push" => Sidekiq::Client.push("class" => "InteropRecord", "args" => args),
  "perform_async" => InteropRecord.perform_async(*args),
  "perform_in" => InteropRecord.perform_in(1, *args),
}
scheduled = Sidekiq::ScheduledSet.new.map(&:jid)
jids["push_bulk"] = Sidekiq::Client.push_bulk("class" => "InteropRecord", "args" => bulk)
emit("jids" => jids, "scheduled" => scheduled)
"""


def test_python_runs_every_kind_of_ruby_push_with_identical_args(
    run_ruby: Callable[..., Any], python_worker: Callable[..., Any], ledger: Any,
    sample_args: list[Any],
) -> None:
    python_worker()
    bulk = [[i, f"bulk {i} ü", {"i": i, "big": 2**64 + i}] for i in range(3)]
    out = run_ruby(PUSH_EVERY_WAY, {"args": sample_args, "bulk": bulk})
    jids = out["jids"]
    assert out["scheduled"] == [jids["perform_in"]]  # perform_in went through `schedule`
    expected = {jids[k]: sample_args for k in ("push", "perform_async", "perform_in")}
    expected.update(zip(jids["push_bulk"], bulk, strict=True))
    ledger.wait_done(expected)
    ledger.check(expected, runner="python")


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text("utf-8").strip()


def test_sidekiq7_retry_entry_reads_in_python() -> None:
    job = decode(_fixture("sidekiq7_retry.json"))
    assert timestamp(job["created_at"]) == 1700000000.123456
    assert timestamp(job["failed_at"]) == 1700000010.5
    assert timestamp(job["retried_at"]) == 1700000042.25
    assert job["retry_count"] == 1
    assert "\n" not in job["error_backtrace"]  # strict Base64 from 7.2.1 on
    assert decode_backtrace(job["error_backtrace"]) == [
        "app/jobs/hard_job.rb:12:in `perform'",
        "lib/sidekiq/processor.rb:196:in `execute_job'",
    ]


def test_sidekiq8_millisecond_timestamps_read_as_seconds() -> None:
    job = decode(_fixture("sidekiq8_job.json"))
    assert isinstance(job["created_at"], int) and isinstance(job["enqueued_at"], int)
    assert timestamp(job["created_at"]) == 1700000000.123
    assert timestamp(job["enqueued_at"]) == 1700000000.456
    failed = decode(_fixture("sidekiq8_retry.json"))
    assert timestamp(failed["failed_at"]) == 1700000010.5
    assert timestamp(failed["retried_at"]) == 1700000042.25
    assert decode_backtrace(failed["error_backtrace"]) == [
        "app/jobs/interop_record.rb:3:in 'InteropRecord#perform'",
        "sidekiq/processor.rb:220:in 'Sidekiq::Processor#execute_job'",
    ]


def test_newline_and_strict_base64_backtraces_decode_alike() -> None:
    strict = decode(_fixture("sidekiq8_retry.json"))["error_backtrace"]
    wrapped = base64.encodebytes(base64.b64decode(strict)).decode()  # 60-column lines, as 6.x
    assert "\n" in wrapped
    assert decode_backtrace(wrapped) == decode_backtrace(strict)


WORKSET = """
entries = []
Sidekiq::Workers.new.each do |process, tid, work|
  entries << {"process" => process, "tid" => tid, "queue" => work["queue"],
              "run_at" => work["run_at"], "class" => work["payload"]["class"],
              "jid" => work["payload"]["jid"]}
end
emit(entries.sort_by { |e| e["tid"] })
"""


def _fake_process(r: redis.Redis, identity: str, work_key: str, entries: dict[str, str]) -> None:
    """A process whose heartbeat wrote ``entries`` (tid -> work JSON) under ``work_key``."""
    r.sadd("processes", identity)
    r.hset(identity, mapping={"info": json.dumps({"identity": identity}),
                              "busy": len(entries)})
    r.hset(f"{identity}{work_key}", mapping=entries)


def test_work_entries_with_payload_as_string_or_object(
    run_ruby: Callable[..., Any], r: redis.Redis
) -> None:
    as_string = _fixture("sidekiq8_work_string.json")
    as_object = _fixture("sidekiq8_work_object.json")
    # The embedded payload is a JSON string in one and an object in the other.
    assert isinstance(json.loads(as_string)["payload"], str)
    assert isinstance(json.loads(as_object)["payload"], dict)
    jids = ["a1b2c3d4e5f60718293a4b5c", "b2c3d4e5f60718293a4b5c6d"]
    # Under 6.4.1's key name ":workers", and under ":work", the name from 6.4.2 on.
    legacy, current = "old-host:4242:0123456789ab", "new-host:4343:ba9876543210"
    _fake_process(r, legacy, ":workers", {"tid1": as_string, "tid2": as_object})
    _fake_process(r, current, ":work", {"tid3": as_string, "tid4": as_object})
    # Python reads both shapes under both key names.
    works = sorted(WorkSet(), key=lambda w: w.tid)
    assert [(w.process, w.tid, w.queue, w.run_at) for w in works] == [
        (legacy, "tid1", "default", 1700000001.0), (legacy, "tid2", "default", 1700000002.0),
        (current, "tid3", "default", 1700000001.0), (current, "tid4", "default", 1700000002.0)]
    assert [(w.job.klass, w.job.jid, w.job.args) for w in works] == [
        ("InteropRecord", jids[0], [10]), ("InteropRecord", jids[1], [11])] * 2
    assert all(w.job.enqueued_at == 1700000000.456 for w in works)  # 8.x milliseconds
    assert len(WorkSet()) == 4
    # The samples are real: Sidekiq 6.4 reads both shapes, but only under ":workers".
    entries = run_ruby(WORKSET)
    assert [(e["process"], e["tid"], e["class"], e["queue"]) for e in entries] == [
        (legacy, "tid1", "InteropRecord", "default"), (legacy, "tid2", "InteropRecord", "default")]
    assert [e["jid"] for e in entries] == jids


def test_python_worker_runs_sidekiq8_jobs_from_a_queue_and_the_retry_set(
    python_worker: Callable[..., Any], r: redis.Redis, ledger: Any
) -> None:
    queued = _fixture("sidekiq8_job.json")
    retried = _fixture("sidekiq8_retry.json")
    r.lpush("queue:default", queued)
    r.sadd("queues", "default")
    r.zadd("retry", {retried: time.time() - 1})  # due: the scheduler moves it to its queue
    python_worker()
    expected = {decode(raw)["jid"]: decode(raw)["args"] for raw in (queued, retried)}
    ledger.wait_done(expected)
    ledger.check(expected, runner="python")
    assert r.zcard("retry") == 0 and r.zcard("dead") == 0


def test_python_reads_a_ruby_job_with_a_huge_bignum(
    run_ruby: Callable[..., Any], redis_url: str
) -> None:
    push = 'emit(Sidekiq::Client.push("class" => "InteropRecord", "args" => [10**4400, "x"]))'
    jid = run_ruby(push)
    record = Queue("default").find_job(jid)
    assert record is not None and record.parse_error is None
    assert (record.klass, record.args) == ("InteropRecord", [10**4400, "x"])
