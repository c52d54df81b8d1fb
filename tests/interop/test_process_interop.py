"""Processes watched and controlled across the languages.

Ruby over Python: ``Sidekiq::ProcessSet`` and ``Sidekiq::Workers`` see a Sidequest process,
``quiet!``/``stop!`` reach it, and Sidekiq's own Web UI renders every page over Python-written
data. Python over Ruby: ``sidequest.api.ProcessSet`` and ``WorkSet`` see a busy ``sidekiq``
process, and ``Process.quiet()``/``stop()`` quiet and stop it. Both: ``Sidekiq::Stats`` and
``sidequest.api.Stats`` report the same numbers over data both sides wrote."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import redis

from apps.interop_jobs import Block, Doomed, Parked, Record
from helpers import FAST, wait_for
from sidequest.api import DeadSet, JobSet, ProcessSet, Queue, RetrySet, Stats, WorkSet

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


def test_stop_from_ruby_pushes_a_running_job_back_and_exits_0(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    worker = python_worker()
    jid = Block.perform_async("never finishes in time")
    wait_for(lambda: ledger.attempts(jid) == 1, what="the blocking job to start")
    assert run_ruby(SIGNAL, {"pid": worker.pid, "signal": "stop"}) == [worker.identity]
    assert worker.wait_exit(FAST["timeout"] + 15) == 0, worker.log_tail()
    assert [json.loads(m)["jid"] for m in r.lrange("queue:default", 0, -1)] == [jid]
    assert jid not in ledger.done() and worker.identity not in r.smembers("processes")


PUSH_BLOCK = 'emit(Sidekiq::Client.push("class" => "InteropBlock", "args" => INPUT))'


def test_python_process_set_and_work_set_read_a_busy_ruby_process(
    start_sidekiq: Callable[..., Any], run_ruby: Callable[..., Any], ledger: Any
) -> None:
    sidekiq = start_sidekiq("-q", "other", "-g", "ruby-tag")
    pushed = time.time()
    jid = run_ruby(PUSH_BLOCK, ["ruby busy", 2**64])
    # Sidekiq 6.4 beats every 5 s; the beat after the job started reports it.
    (process,) = wait_for(lambda: [p for p in ProcessSet() if p.busy == 1],
                          what="the Ruby process busy in a beat")
    assert process.identity == sidekiq.identity and len(ProcessSet()) == 1
    assert (process.hostname, process.pid) == (socket.gethostname(), sidekiq.pid)
    # 6.4.1 keeps concurrency only inside `info` (8.1.2+ only as a hash field).
    assert process.concurrency == 5 and process.queues == ["default", "other"]
    assert (process.tag, process.labels, process.version) == ("ruby-tag", [], "")
    assert process.stopping is False and process.rss > 0
    assert process.started_at <= process.beat <= time.time()
    # Sidekiq 6.4.1 writes the jobs it runs under "<identity>:workers" only.
    (work,) = WorkSet()
    assert (work.process, work.queue) == (sidekiq.identity, "default")
    assert (work.job.klass, work.job.jid, work.job.args) == ("InteropBlock", jid,
                                                             ["ruby busy", 2**64])
    assert work.tid and work.run_at == int(work.run_at)  # an integer of seconds
    assert int(pushed) <= work.run_at <= time.time()
    assert len(WorkSet()) == 1
    ledger.r.set("release", 1)
    ledger.wait_done([jid])
    ledger.check({jid: ["ruby busy", 2**64]}, runner="ruby")


def test_python_quiets_and_stops_a_ruby_process(
    start_sidekiq: Callable[..., Any], ledger: Any
) -> None:
    sidekiq = start_sidekiq()

    def ruby_process() -> Any:
        return ProcessSet().find(sidekiq.identity)

    process = ruby_process()
    assert process is not None and process.stopping is False
    process.quiet()
    # Ruby picks the signal up at its next beat and reports quiet at the one after.
    wait_for(lambda: ruby_process().stopping, timeout=20, what="the Ruby process to be quiet")
    # Its fetchers stopped a beat (5 s) ago; this job waits until the stop (another beat).
    jid = Record.perform_async("must wait")
    ruby_process().stop()
    assert sidekiq.wait_exit(20) == 0, sidekiq.log_tail()
    assert ProcessSet().processes() == [] and len(WorkSet()) == 0
    assert Queue("default").size == 1 and jid not in ledger.done()


STATS = """
s = Sidekiq::Stats.new
history = Sidekiq::Stats::History.new(INPUT["days"], Date.parse(INPUT["start"]))
emit("processed" => s.processed, "failed" => s.failed, "enqueued" => s.enqueued,
     "retry_size" => s.retry_size, "dead_size" => s.dead_size,
     "scheduled_size" => s.scheduled_size, "processes_size" => s.processes_size,
     "workers_size" => s.workers_size, "queues" => s.queues,
     "default_queue_latency" => s.default_queue_latency,
     "history" => {"processed" => history.processed, "failed" => history.failed})
"""

#: What Sidekiq::Stats and sidequest.api.Stats both report, latency aside.
STAT_NAMES = ("processed", "failed", "enqueued", "retry_size", "dead_size", "scheduled_size",
              "processes_size", "workers_size", "queues")

# With -c 1 the Ruby process runs these one after the other, oldest first, and then stays
# busy in InteropBlock, so it fetches nothing more.
RUBY_RUNS = """
jids = 3.times.map { |i| Sidekiq::Client.push("class" => "InteropRecord", "args" => [i]) }
Sidekiq::Client.push("class" => "InteropDoomed", "args" => ["ruby"], "retry" => 0)
emit("records" => jids, "block" => Sidekiq::Client.push("class" => "InteropBlock", "args" => []))
"""


def _python_stats(stats: Stats) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in STAT_NAMES}


def test_ruby_and_python_stats_agree_over_data_both_sides_wrote(
    start_sidekiq: Callable[..., Any], python_worker: Callable[..., Any],
    run_ruby: Callable[..., Any], ledger: Any,
) -> None:
    sidekiq = start_sidekiq("-c", "1")  # serves `default`
    ruby = run_ruby(RUBY_RUNS)
    python = python_worker("-q", "busy")
    records = [str(j) for j in Record.set(queue="busy").perform_bulk([[i] for i in range(5)])]
    Parked.set(queue="busy").perform_async("to retry")
    Doomed.set(queue="busy").perform_async("to the dead set")
    blocked = Block.set(queue="busy").perform_async("python busy")
    try:
        ledger.wait_done(records + ruby["records"])
    except AssertionError as exc:
        missing = set(records + ruby["records"]) - {k.decode() if isinstance(k, bytes) else k
                                                    for k in ledger.r.hkeys("done")}
        raise AssertionError(f"{exc}; missing {missing} (python {records}, ruby "
                             f"{ruby['records']}); python log: {python.log_tail()}") from None
    # Ruby: 4 processed, 1 failed; Python: 7 processed, 2 failed. Both busy with one job.
    # Ruby 6.4 flushes its counters on its heartbeat, every 5 s: allow several beats, and
    # say what was seen if they never add up.
    seen: list[tuple[int, int]] = []

    def counts_add_up() -> bool:
        stats = Stats()
        seen.append((stats.processed, stats.failed))
        return seen[-1] == (11, 3)

    try:
        wait_for(counts_add_up, timeout=30, what="both sides' counts (11 processed, 3 failed)")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {seen[-1]}; ledger {ledger.r.hgetall('done')}"
                             ) from None
    busy = {sidekiq.identity: 1, python.identity: 1}
    wait_for(lambda: {p.identity: p.busy for p in ProcessSet()} == busy, what="both busy")
    # The Parked retry is due an hour after its failure: it stays put until the end.
    Record.perform_bulk([["queued"]] * 2)
    Record.set(queue="other").perform_bulk([["queued elsewhere"]] * 3)
    Record.perform_in(3600, "later")
    tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)  # in case of midnight
    before = Stats()
    out = run_ruby(STATS, {"start": tomorrow.isoformat(), "days": 3})
    after = Stats()
    expected = {"processed": 11, "failed": 3, "enqueued": 5, "retry_size": 1, "dead_size": 2,
                "scheduled_size": 1, "processes_size": 2, "workers_size": 2,
                "queues": {"default": 2, "other": 3, "busy": 0}}
    assert _python_stats(before) == _python_stats(after) == expected
    assert {name: out[name] for name in STAT_NAMES} == expected
    # Each side measures latency at its own moment: Ruby's lies between Python's two.
    assert before.default_queue_latency > 0
    assert before.default_queue_latency - 1e-3 <= out["default_queue_latency"]
    assert out["default_queue_latency"] <= after.default_queue_latency + 1e-3
    history = Stats.history(3, tomorrow)
    assert history == out["history"]
    assert [sum(history[kind].values()) for kind in ("processed", "failed")] == [11, 3]
    ledger.r.set("release", 1)
    ledger.wait_done([ruby["block"], blocked])


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


def _key(jobset: JobSet, jid: str) -> str:
    """A row key as Sidekiq's UI links it: "<score>-<jid>" (score as Python writes floats)."""
    entry = jobset.find_job(jid)
    assert entry is not None, f"{jid} is not in {jobset.name}"
    return entry.id


def test_sidekiq_web_renders_every_page_over_python_data(
    python_worker: Callable[..., Any], run_ruby: Callable[..., Any], r: redis.Redis,
    ledger: Any,
) -> None:
    # The worker serves only `busy`, so what Python pushes to `default` stays queued.
    worker = python_worker("-q", "busy", "-g", "web-tag")
    retried = Parked.set(queue="busy").perform_async("to retry", "ü")
    dead = Doomed.set(queue="busy").perform_async("to the dead set")
    running = Block.set(queue="busy").perform_async("running")
    queued = Record.perform_async("queued", {"n": 2**64})
    scheduled = Record.perform_in(3600, "later")
    wait_for(lambda: r.zcard("retry") == 1 and r.zcard("dead") == 1, what="the two failures")
    _busy(r, worker.identity, 1)
    retry_key, dead_key = _key(RetrySet(), retried), _key(DeadSet(), dead)
    expect = {
        "/": ["Dashboard"],
        "/busy": [worker.identity, "web-tag", "InteropBlock", running],
        "/queues": ["default"],
        "/queues/default": ["InteropRecord", queued],
        "/retries": ["InteropParked", retried],
        f"/retries/{retry_key}": ["InteropParked", retried, "fails on purpose",
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
