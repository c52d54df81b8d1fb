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


def test_work_entries_with_payload_as_string_or_object(
    run_ruby: Callable[..., Any], r: redis.Redis
) -> None:
    as_string = json.loads(_fixture("sidekiq8_work_string.json"))
    as_object = json.loads(_fixture("sidekiq8_work_object.json"))
    # Python side: the embedded payload is a JSON string in one and an object in the other.
    assert isinstance(as_string["payload"], str) and isinstance(as_object["payload"], dict)
    for entry in (as_string, as_object):
        embedded = entry["payload"]
        job = decode(embedded) if isinstance(embedded, str) else embedded
        assert job["class"] == "InteropRecord" and isinstance(entry["run_at"], int)
        assert timestamp(job["enqueued_at"]) == 1700000000.456
    # The samples are real: Sidekiq 6.4 reads both shapes (it looks under ":workers").
    identity = "fixture-host:4242:0123456789ab"
    r.sadd("processes", identity)
    r.hset(identity, mapping={"info": json.dumps({"identity": identity}), "busy": 2})
    r.hset(f"{identity}:workers", mapping={"tid1": _fixture("sidekiq8_work_string.json"),
                                           "tid2": _fixture("sidekiq8_work_object.json")})
    entries = run_ruby(WORKSET)
    assert [(e["tid"], e["class"], e["queue"]) for e in entries] == [
        ("tid1", "InteropRecord", "default"), ("tid2", "InteropRecord", "default")]
    assert [e["jid"] for e in entries] == [
        json.loads(as_string["payload"])["jid"], as_object["payload"]["jid"]]


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
    run_ruby: Callable[..., Any], r: redis.Redis
) -> None:
    push = 'emit(Sidekiq::Client.push("class" => "InteropRecord", "args" => [10**4400, "x"]))'
    jid = run_ruby(push)
    job = decode(r.lindex("queue:default", 0) or b"")
    assert job["jid"] == jid and job["args"] == [10**4400, "x"]
