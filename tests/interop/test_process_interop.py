"""Ruby's monitoring and control of a Sidequest process: ``Sidekiq::ProcessSet`` and
``Sidekiq::Workers`` see it, ``quiet!``/``stop!`` reach it, ``Sidekiq::Stats`` adds up what
it wrote, and Sidekiq's own Web UI renders every page over Python-written data."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import redis

from apps.interop_jobs import Block, Doomed, Flaky, Record
from helpers import FAST, wait_for

PROCESSES = """
processes = Sidekiq::ProcessSet.new.map do |p|
  {"identity" => p.identity, "hostname" => p["hostname"], "pid" => p["pid"],
   "queues" => p.queues, "concurrency" => p["concurrency"], "busy" => p["busy"],
   "tag" => p.tag, "labels" => p.labels, "quiet" => p["quiet"], "stopping" => p.stopping?,
   "started_at" => p["started_at"], "beat" => p["beat"]}
end
work = Sidekiq::Workers.new.map do |process, tid, w|
  {"process" => process, "tid" => tid, "queue" => w["queue"], "run_at" => w["run_at"],
   "class" => w["payload"]["class"], "jid" => w["payload"]["jid"], "args" => w["payload"]["args"]}
end
emit("processes" => processes, "work" => work)
"""

SIGNAL = """
targets = Sidekiq::ProcessSet.new.select { |p| p["pid"] == INPUT["pid"] }
targets.each { |p| INPUT["signal"] == "quiet" ? p.quiet! : p.stop! }
emit(targets.map(&:identity))
"""


def _busy(r: redis.Redis, identity: str, count: int) -> None:
    wait_for(lambda: r.hget(identity, "busy") == str(count), what=f"busy == {count} in a beat")


def test_ruby_process_set_and_workers_see_a_busy_python_process(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    worker = python_worker("-c", "3", "-g", "interop-tag", "-q", "default", "-q", "other")
    pushed = time.time()
    jid = Block.perform_async("busy", 1)
    _busy(r, worker.identity, 1)
    out = run_ruby(PROCESSES)
    (process,) = out["processes"]
    assert process["identity"] == worker.identity
    assert (process["hostname"], process["pid"]) == (socket.gethostname(), worker.pid)
    assert process["queues"] == ["default", "other"] and process["concurrency"] == 3
    assert (process["busy"], process["tag"], process["labels"]) == (1, "interop-tag", [])
    assert (process["quiet"], process["stopping"]) == ("false", False)
    assert process["started_at"] <= process["beat"] <= time.time()
    (work,) = out["work"]
    assert (work["process"], work["queue"]) == (worker.identity, "default")
    assert (work["class"], work["jid"], work["args"]) == ("InteropBlock", jid, ["busy", 1])
    assert isinstance(work["run_at"], int) and int(pushed) <= work["run_at"] <= time.time()
    assert isinstance(work["tid"], str) and work["tid"]
    ledger.r.set("release", 1)
    ledger.wait_done([jid])


def test_quiet_from_ruby_stops_fetching_and_stop_exits_cleanly(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    worker = python_worker("-c", "2")
    running = Block.perform_async("running")
    wait_for(lambda: ledger.attempts(running) == 1, what="the blocking job to start")
    assert run_ruby(SIGNAL, {"pid": worker.pid, "signal": "quiet"}) == [worker.identity]
    wait_for(lambda: r.hget(worker.identity, "quiet") == "true", what="quiet in the process hash")
    assert [p["stopping"] for p in run_ruby(PROCESSES)["processes"]] == [True]
    waiting = Record.perform_async("must wait")
    # Several beats (and more than a blocking fetch) later the job is still queued.
    pushed = time.time()
    settle = FAST["fetch_timeout"] + 3 * FAST["heartbeat_interval"]
    wait_for(lambda: float(r.hget(worker.identity, "beat") or 0) > pushed + settle,
             what="more beats of the quiet process")
    assert r.llen("queue:default") == 1 and waiting not in ledger.done()
    ledger.r.set("release", 1)
    ledger.wait_done([running])
    assert run_ruby(SIGNAL, {"pid": worker.pid, "signal": "stop"}) == [worker.identity]
    assert worker.wait_exit(15) == 0, worker.log_tail()
    assert worker.identity not in r.smembers("processes")
    assert r.llen("queue:default") == 1 and waiting not in ledger.done()


def test_quiet_from_ruby_also_stops_the_python_poller(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis
) -> None:
    worker = python_worker()
    assert run_ruby(SIGNAL, {"pid": worker.pid, "signal": "quiet"}) == [worker.identity]
    wait_for(lambda: r.hget(worker.identity, "quiet") == "true", what="quiet in the process hash")
    jid = Record.perform_in(0.2, "due while quiet")
    # Well past the due time plus several poll intervals and beats of the quiet process.
    settle = time.time() + 0.2 + 5 * FAST["poll_interval"] + 3 * FAST["heartbeat_interval"]
    wait_for(lambda: float(r.hget(worker.identity, "beat") or 0) > settle,
             what="more beats of the quiet process")
    assert [json.loads(m)["jid"] for m in r.zrange("schedule", 0, -1)] == [jid]


def test_stop_from_ruby_pushes_a_running_job_back_and_exits_1(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    worker = python_worker()
    jid = Block.perform_async("never finishes in time")
    wait_for(lambda: ledger.attempts(jid) == 1, what="the blocking job to start")
    assert run_ruby(SIGNAL, {"pid": worker.pid, "signal": "stop"}) == [worker.identity]
    assert worker.wait_exit(FAST["timeout"] + 15) == 1, worker.log_tail()
    assert [json.loads(m)["jid"] for m in r.lrange("queue:default", 0, -1)] == [jid]
    assert jid not in ledger.done() and worker.identity not in r.smembers("processes")


STATS = """
s = Sidekiq::Stats.new
history = Sidekiq::Stats::History.new(2)
emit("processed" => s.processed, "failed" => s.failed, "enqueued" => s.enqueued,
     "daily" => {"processed" => history.processed, "failed" => history.failed},
     "retry_size" => s.retry_size, "dead_size" => s.dead_size,
     "scheduled_size" => s.scheduled_size, "default_queue_latency" => s.default_queue_latency,
     "queues" => s.queues, "processes_size" => s.processes_size)
"""


def _raw_stats(r: redis.Redis) -> dict[str, Any]:
    queues = {q: r.llen(f"queue:{q}") for q in sorted(r.smembers("queues"))}
    return {
        "processed": int(r.get("stat:processed") or 0),
        "failed": int(r.get("stat:failed") or 0),
        "enqueued": sum(queues.values()),
        "retry_size": r.zcard("retry"),
        "dead_size": r.zcard("dead"),
        "scheduled_size": r.zcard("schedule"),
        "queues": {q: n for q, n in queues.items() if n},
        "processes_size": r.scard("processes"),
        "daily": {kind: {day: int(r.get(f"stat:{kind}:{day}") or 0) for day in _last_days(2)}
                  for kind in ("processed", "failed")},
    }


def _last_days(count: int) -> list[str]:
    today = datetime.now(timezone.utc).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(count)]


def _default_latency(r: redis.Redis) -> float:
    oldest = r.lindex("queue:default", -1)
    return time.time() - json.loads(oldest)["enqueued_at"] if oldest else 0.0


def test_ruby_stats_over_python_written_data(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    worker = python_worker()
    done = Record.perform_bulk([[i] for i in range(5)])
    Flaky.perform_async("to retry")
    Doomed.perform_async("to the dead set")
    ledger.wait_done([str(j) for j in done])
    wait_for(lambda: r.zcard("retry") == 1 and r.zcard("dead") == 1, what="the two failures")
    wait_for(lambda: r.get("stat:processed") == "7", what="7 processed in the stats")
    assert worker.stop() == 0
    Record.perform_bulk([["queued"]] * 2)
    Record.set(queue="other").perform_bulk([["queued elsewhere"]] * 3)
    Record.perform_in(3600, "later")
    before = _default_latency(r)
    stats = run_ruby(STATS)
    after = _default_latency(r)
    raw = _raw_stats(r)
    assert {k: v for k, v in raw.items() if k != "daily"} == {
        "processed": 7, "failed": 2, "enqueued": 5, "retry_size": 1, "dead_size": 1,
        "scheduled_size": 1, "queues": {"default": 2, "other": 3}, "processes_size": 0}
    # Python's daily counters, by UTC date (two days, in case the test straddles midnight).
    assert [sum(raw["daily"][kind].values()) for kind in ("processed", "failed")] == [7, 2]
    latency = stats.pop("default_queue_latency")
    assert stats == raw
    assert before <= latency <= after


WEB = """
require "rack"
require "rack/mock"
require "rack/session/cookie"
require "sidekiq/web"

app = Rack::Builder.new do
  # 6.4's CSRF protection needs a session (Sidekiq::Web.set(:sessions, false) is a no-op there).
  use Rack::Session::Cookie, secret: "interop-test-secret-" * 4, same_site: true
  run Sidekiq::Web
end
mock = Rack::MockRequest.new(app)
pages = INPUT["paths"].to_h do |path|
  errors = StringIO.new
  result = begin
    res = mock.get(path, "rack.errors" => errors)
    {"status" => res.status, "body" => res.body.force_encoding("UTF-8")}
  rescue Exception => e
    {"status" => 0, "body" => "#{e.class}: #{e.message}\\n#{e.backtrace.first(8).join("\\n")}"}
  end
  [path, result.merge("errors" => errors.string)]
end
emit(pages)
"""


def _key(r: redis.Redis, zset: str) -> str:
    """A row key as Sidekiq's UI links it: "<score>-<jid>" (score as Python writes floats)."""
    ((member, score),) = r.zrange(zset, 0, -1, withscores=True)
    return f"{score!r}-{json.loads(member)['jid']}"


def test_sidekiq_web_renders_every_page_over_python_data(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    # The worker serves only `busy`, so what Python pushes to `default` stays queued.
    worker = python_worker("-q", "busy", "-g", "web-tag")
    retried = Flaky.set(queue="busy").perform_async("to retry", "ü")
    dead = Doomed.set(queue="busy").perform_async("to the dead set")
    running = Block.set(queue="busy").perform_async("running")
    queued = Record.perform_async("queued", {"n": 2**64})
    scheduled = Record.perform_in(3600, "later")
    wait_for(lambda: r.zcard("retry") == 1 and r.zcard("dead") == 1, what="the two failures")
    _busy(r, worker.identity, 1)
    retry_key, dead_key = _key(r, "retry"), _key(r, "dead")
    expect = {
        "/": ["Dashboard"],
        "/busy": [worker.identity, "web-tag", "InteropBlock", running],
        "/queues": ["default"],
        "/queues/default": ["InteropRecord", queued],
        "/retries": ["InteropFlaky", retried],
        f"/retries/{retry_key}": ["InteropFlaky", retried, "fails on purpose",
                                  "apps.interop_jobs.InteropError", "interop_jobs.py"],
        "/scheduled": ["InteropRecord", scheduled],
        "/morgue": ["InteropDoomed", dead],
        f"/morgue/{dead_key}": ["InteropDoomed", dead, "always fails", "interop_jobs.py"],
    }
    pages = run_ruby(WEB, {"paths": list(expect)})
    for path, texts in expect.items():
        page = pages[path]
        assert (page["status"], page["errors"]) == (200, ""), (path, page["body"][:2000])
        missing = [t for t in texts if t not in page["body"]]
        assert not missing, f"{path} lacks {missing}"
    ledger.r.set("release", 1)
    ledger.wait_done([running])
