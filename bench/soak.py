#!/usr/bin/env python3
"""Soak: many jobs through one worker with flat memory, then a mixed run with kills.

    .venv/bin/python bench/soak.py                         # 1,000,000 no-op jobs + mixed run
    .venv/bin/python bench/soak.py --jobs 100000 --mixed 20000   # the reduced form
    .venv/bin/python bench/soak.py --jobs 0 --mixed 0 --recycle 60   # phase 3 only, 1 minute
    make soak

Phase 1 (L1): ``--jobs`` no-op jobs through ONE worker process at -c 10, pushed in pipelined
batches while it drains (backlog kept under 50,000). Reported: jobs/s, the worker's RSS
sampled every second (growth after a 10 % warm-up must stay under 10 %), Redis key count and
used_memory before and after (back to baseline: no key leaked per job).

Phase 2 (L2, shortened): ``--mixed`` jobs over three weighted queues (critical,3 default,2
low,1), 1 % failing once then retried, 5 % scheduled 1-5 s ahead, two workers of which one
is SIGKILLed and replaced every ``--kill-every`` seconds. Reported: lost (must be 0),
duplicates, and the retry/schedule/dead sets and in-progress lists at the end (empty).

Phase 3 (memory recycling): ``-P 2 --max-memory 90`` for ``--recycle`` seconds while a
steady stream of jobs arrives, one in ten a ``fault.Hog`` that keeps 5 MB for the life of its
process (a leak). Children past the limit finish their jobs and exit; the parent starts fresh
ones. Reported: jobs, lost (must be 0), duplicates, and how many child processes ran them.

Every completion is counted by the job in an append-only ledger file outside Redis
(tests/apps/fault_jobs.py). Each phase runs against a private redis-server on a free port.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "tests"), str(ROOT / "src")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import psutil  # noqa: E402
import redis  # noqa: E402

import sidequest  # noqa: E402
from fault.harness import Ledger, Worker, write_config  # noqa: E402
from redis_server import RedisServer  # noqa: E402
from sidequest import client  # noqa: E402

BATCH = 10_000
BACKLOG = 50_000
MB = 1024 * 1024
#: Shrunk so that a killed worker's jobs come back within a couple of seconds.
TIMERS = {"heartbeat_interval": 0.5, "lease_ttl": 2.0, "reaper_interval": 0.5,
          "poll_interval": 0.5, "initial_poll_wait": 0, "fetch_timeout": 1.0, "timeout": 5.0}


def private_redis(directory: Path) -> RedisServer:
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server is missing: run `make redis`")
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(executable, directory)
    server.start()
    return server


def wait(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def snapshot(r: redis.Redis) -> tuple[int, int, set[bytes]]:
    """Keys that never expire, and memory. Keys with a TTL (execution metrics per minute,
    process records) go away by themselves, so they cannot leak."""
    names = {name for name in r.scan_iter(count=1000) if r.ttl(name) == -1}
    return len(names), int(r.info("memory")["used_memory"]), names


def noop_phase(jobs: int, workdir: Path) -> bool:
    print(f"== phase 1: {jobs:,} no-op jobs, one worker, -c 10")
    server = private_redis(workdir / "redis1")
    r = server.client()
    ledger = Ledger(workdir / "ledger1.jsonl")
    sidequest.configure(redis_url=server.url)
    config = write_config(workdir / "soak1.toml", **TIMERS)
    worker = Worker(server.url, ledger.path, config, workdir, "-c", "10")
    try:
        worker.wait_registered(r)
        proc = psutil.Process(worker.pid)
        # Warm-up: the first 1 % (at least 1,000) sets up stats keys and caches.
        warm = max(1_000, jobs // 100)
        client.push_many([{"class": "fault.Noop", "args": []}] * warm)
        wait(lambda: ledger.done_count() >= warm, 60, "the warm-up")
        time.sleep(1.0)  # let one heartbeat flush the stats of the warm-up
        keys0, mem0, names0 = snapshot(r)
        pushed, samples, started = warm, [], time.monotonic()
        next_sample = started
        while pushed < jobs + warm or r.llen("queue:default"):
            if pushed < jobs + warm and r.llen("queue:default") < BACKLOG:
                n = min(BATCH, jobs + warm - pushed)
                client.push_many([{"class": "fault.Noop", "args": []}] * n)
                pushed += n
            else:
                time.sleep(0.05)
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - started, proc.memory_info().rss))
                next_sample += 1.0
            if not worker.alive:
                raise SystemExit(f"soak: the worker died:\n{worker.log()}")
        wait(lambda: ledger.done_count() >= jobs + warm, 120, "the last completions")
        elapsed = time.monotonic() - started
        time.sleep(1.5)  # acks and a heartbeat
        keys1, mem1, names1 = snapshot(r)
        done = ledger.done_count()
        dups = sum(1 for n in ledger.counts("done").values() if n > 1)
        after_warmup = [rss for t, rss in samples if t >= elapsed * 0.1] or [samples[-1][1]]
        growth = (max(after_warmup) - after_warmup[0]) / after_warmup[0]
        print(f"  {jobs:,} jobs in {elapsed:.1f}s = {jobs / elapsed:,.0f} jobs/s;"
              f" {done - warm:,} done after warm-up, {jobs + warm - done} lost, {dups} duplicates")
        print(f"  worker RSS: {samples[0][1] / MB:.1f} MB at start, {after_warmup[0] / MB:.1f} MB"
              f" after warm-up, max {max(after_warmup) / MB:.1f} MB, end {samples[-1][1] / MB:.1f}"
              f" MB: growth {growth * 100:.1f} % after warm-up")
        print(f"  Redis keys without a TTL {keys0} -> {keys1} (new: {sorted(names1 - names0)}),"
              f" used_memory {mem0 / MB:.2f} -> {mem1 / MB:.2f} MB")
        ok = done == jobs + warm and growth < 0.10 and keys1 <= keys0 + 1 and mem1 < mem0 + MB
        print(f"  phase 1 {'PASS' if ok else 'FAIL'}")
        return ok
    finally:
        worker.reap()
        sidequest.connection.reset()
        server.stop()


def mixed_phase(jobs: int, kill_every: float, workdir: Path) -> bool:
    print(f"== phase 2: {jobs:,} mixed jobs, 3 weighted queues, 2 workers, a kill every"
          f" {kill_every:g}s")
    rng = random.Random(42)
    server = private_redis(workdir / "redis2")
    r = server.client()
    ledger = Ledger(workdir / "ledger2.jsonl")
    sidequest.configure(redis_url=server.url)
    config = write_config(workdir / "soak2.toml", **TIMERS)
    queues = ("-q", "critical,3", "-q", "default,2", "-q", "low,1")

    def make() -> Worker:
        return Worker(server.url, ledger.path, config, workdir, "-c", "10", *queues)

    workers = [make(), make()]
    try:
        for worker in workers:
            worker.wait_registered(r)
        items = []
        for _ in range(jobs):
            roll = rng.random()
            item = {"class": "fault.Work", "args": [rng.choice((0, 0.001, 0.005))],
                    "queue": rng.choice(("critical", "default", "low"))}
            if roll < 0.01:
                item = {**item, "class": "fault.Flaky", "args": [1]}
            elif roll < 0.06:
                item["at"] = time.time() + rng.uniform(1, 5)
            items.append(item)
        accepted = [j for j in client.push_many(items) if j]
        started, kills = time.monotonic(), 0
        while ledger.done_count() < jobs and time.monotonic() - started < 600:
            time.sleep(kill_every)  # the fault's rhythm
            if ledger.done_count() >= jobs:
                break
            i = rng.randrange(2)
            workers[i].kill()
            workers[i].reap()
            workers[i] = make()
            kills += 1
        wait(lambda: ledger.done_count() >= jobs, 120, "every mixed job done")
        wait(lambda: not r.keys("sq:inprogress:*"), 30, "no in-progress list")
        report = ledger.check(accepted, dead=[])
        sets = {name: r.zcard(name) for name in ("retry", "schedule", "dead")}
        print(f"  {kills} kills in {time.monotonic() - started:.1f}s; {report.text()};"
              f" sets at the end {sets}; {r.llen('sq:quarantine')} in quarantine")
        ok = not report.lost and not any(sets.values())
        print(f"  phase 2 {'PASS' if ok else 'FAIL'}")
        return ok
    finally:
        for worker in workers:
            worker.reap()
        sidequest.connection.reset()
        server.stop()


def recycle_phase(seconds: float, workdir: Path) -> bool:
    print(f"== phase 3: -P 2 --max-memory 90 for {seconds:g}s, one job in ten leaking 5 MB")
    server = private_redis(workdir / "redis3")
    r = server.client()
    ledger = Ledger(workdir / "ledger3.jsonl")
    sidequest.configure(redis_url=server.url)
    # Nothing is killed here: the default 20 s lease, so that a heartbeat late on a loaded
    # machine cannot let a sibling's reaper take a live process's jobs (a rerun, not a loss).
    config = write_config(workdir / "soak3.toml", **{**TIMERS, "lease_ttl": 20.0})
    parent = Worker(server.url, ledger.path, config, workdir, "-P", "2", "-c", "4",
                    "--max-memory", "90")
    try:
        wait(lambda: r.scard("processes") >= 2, 30, "two children to register")
        accepted: list[str] = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            items = [{"class": "fault.Hog", "args": [5]}] + [
                {"class": "fault.Work", "args": [0.01]}] * 9
            accepted += [j for j in client.push_many(items) if j]
            time.sleep(0.5)
            if not parent.alive:
                raise SystemExit(f"soak: the -P parent died:\n{parent.log()}")
        wait(lambda: ledger.done_count() >= len(accepted), 120, "every job done")
        report = ledger.check(accepted, dead=[])
        pids = {entry[3] for entry in ledger.entries() if entry[0] == "done"}
        print(f"  {len(accepted):,} jobs in {time.monotonic() - started:.1f}s; {report.text()};"
              f" {len(pids)} child processes ran them")
        ok = not report.lost and not report.duplicates and len(pids) > 2
        print(f"  phase 3 {'PASS' if ok else 'FAIL'}")
        return ok
    finally:
        parent.reap()
        sidequest.connection.reset()
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="no-op jobs (phase 1)")
    parser.add_argument("--mixed", type=int, default=100_000, help="mixed jobs (phase 2)")
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument("--recycle", type=float, default=300.0,
                        help="seconds of --max-memory recycling under -P 2 (phase 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sidequest-soak-") as tmp:
        ok = noop_phase(args.jobs, Path(tmp)) if args.jobs else True
        ok = (mixed_phase(args.mixed, args.kill_every, Path(tmp)) if args.mixed else True) and ok
        ok = (recycle_phase(args.recycle, Path(tmp)) if args.recycle else True) and ok
    print("soak", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
