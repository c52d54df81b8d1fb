"""The prose of docs/performance.md: what the bench does and how to read its figures.

Kept apart from bench/report.py, which computes the figures and assembles the page.
"""

INTRO = """\
`make bench` runs Sidequest, Ruby Sidekiq and the Python job systems on the same machine,
against the same private Redis, with the same job: one `INCR` on a counter in a Redis
database of its own, outside the system under test, so that completions are counted by the
bench and no system is credited for work it did not do. Each worker is one process running
10 jobs at once where the system can (its closest equivalent otherwise), at log level
WARNING, with the system's defaults otherwise; only "drain, 2 processes" runs two."""

COST_TEXT = """\
Measured over the same drain, from its first completion to its last (bench/cost.py): the CPU
time of the worker's process tree, its context switches summed over all its threads (a
voluntary switch is a thread waiting: for a socket, a lock or the interpreter lock; an
involuntary one is the kernel taking its core away), and the Redis server's CPU time, all
divided by the jobs drained. A rate depends on the machine; these say where the time goes,
and they are what to compare across CPU types. The job's own `INCR` (through the system's
Redis client) is part of each figure.

"The job alone" is that `INCR`, the same job code, run in a bare loop on one thread with no
job system around it (bench/agents/job_alone.py, bench/sidekiq/job_alone.rb): what the job
costs in its language and client. "The system's own CPU" is the worker's CPU per job less
that: fetching, decoding, dispatching and acknowledging, and the waits its threads add
around the job's own round trip (several threads that share one interpreter lock make each
of their Redis calls dearer than one thread does)."""

METHOD = """\
## Method

- **single / bulk enqueue**: jobs/s of a pusher process of the system's own environment,
  timed by itself: `perform_async`-style calls one at a time, then the system's bulk API in
  batches of 1,000 (a loop where the system has none).
- **drain**: the bulk-pushed jobs, then one worker process is started; jobs/s from the first
  completion to the last (the counter is polled every 5 ms), so start-up time is not counted.
  The bench then checks that the counter holds exactly N: no job ran twice.
- **latency**: the same worker, idle after the drain; jobs are pushed one at a time after
  random gaps (the same gaps for every system in a run), each carrying its push time; the job
  records the time it started. p50 and p99 of start minus push. The pusher pushes one job
  more than it counts: its first push also opens its connection to Redis, which is set-up,
  not the worker's pick-up, so the earliest push is left out. A worker that polls Redis
  shows its polling interval here, and a long gap lets any back-off grow as it would in
  production.
- **drain +1 ms**: the drain again with the worker talking to Redis through
  `bench/latency_proxy.py`, which adds 1 ms each way, as Sidekiq's own load test does with a
  latency proxy: on loopback a round trip costs microseconds and hides how many a system
  makes per job. The counter is reached directly, so only the system's own round trips pay.
  The proxy is a Python asyncio process on the same cores; its timer adds a little to the
  asked delay (the PING figure under Setup is the round trip as measured).
- **drain, 2 processes**: the drain again, with two worker processes of 10 threads each on
  the machine at once. The machine has 2 cores, and one CPython process is bound by its
  interpreter lock (one Ruby process by its own), so a second process is how a deployment
  uses the second core. Sidequest runs `sidequest -P 2`: one command, whose supervisor forks
  two worker processes of 10 threads each. Ruby Sidekiq runs two `sidekiq` processes of 10
  threads each, started together, each the command of the drain above (Sidekiq's free
  edition has no multi-process mode of its own). As for the drain, jobs/s run from the first
  completion to the last and the counter must end at exactly N. The other systems are not
  measured here.
- **peak RSS**: resident memory of the worker's process tree, sampled every 50 ms during the
  drain (Celery prefork and Dramatiq count their pool and supervisor processes too).
- Every figure is the median of the runs; the systems take turns within each run.
  Sidequest runs from a copy of `src/` taken when the suite starts (its version line gives
  the commit), so that edits made during a run do not mix versions.
- Caveats: one machine, shared with other work (see the load line); the pushers, Redis and
  the worker share its cores, as they would on a small server. RQ's SimpleWorker runs one job
  at a time by design (RQ has no threaded worker), so its drain is not a 10-at-once figure.
  Celery runs without a result backend, and Celery's default acknowledges a task when it
  starts (a crash loses it), where Sidequest acknowledges after the job ran."""

RUNNING = """\
## Running it

```
make bench                                   # install what is missing, 3 runs, rewrite this page
make bench BENCH_ARGS="--systems sidequest,sidekiq --jobs 20000 --runs 1 --no-write"
.venv/bin/python bench/suite.py --quick      # Sidequest alone, small sizes: what `make test` runs
.venv/bin/python bench/throughput.py         # Sidequest alone against its own floors (--check)
.venv/bin/python bench/async_bench.py        # async def jobs against arq (make bench runs it too)
```

Flags: `--systems` (comma list of sidequest, sidekiq, celery-threads, celery-prefork, dramatiq,
huey, rq, arq), `--jobs N` (100,000), `--runs R` (3), `--proxy-jobs` (N/10), `--latency-jobs`
(1,000), `--max-gap` (2 s), `--quick`, `--skip-install`, `--no-write`, `--logs DIR` (keep the
workers' logs). At the defaults a run takes hours, mostly the latency test (1,000 gaps of up
to 2 s per system and run); the sizes of the run above are under Setup. The Python peers are
installed on first use into `bench/.venvs/<name>` (gitignored), pinned in `bench/systems.py`;
so is Sidequest's default install (this working tree with its required dependencies, none of
the development extras), into `bench/.venvs/<name>` as well; until that is built (`--quick`,
`--skip-install`) Sidequest runs from the project's venv, and the versions line says which.
Ruby Sidekiq comes from Debian's `ruby-sidekiq` (apt-get, when run as root)."""

SYSTEM_NOTES = """\
## Per system

- **Sidekiq**: Debian's ruby-sidekiq 6.4.1 with redis-rb 4.8, which prints a deprecation
  warning at every BRPOP of Sidekiq 6.4 (about one per job); the bench silences it
  (`Redis.silence_deprecations`), as it sets `Sidekiq.logger.level = Logger::WARN`. The job
  reaches the counter through a ConnectionPool of 10, as each Python thread gets a connection
  of its own from redis-py's pool.
- **Celery**: no result backend; `--pool prefork -c 10` is 10 child processes, all counted in
  its RSS. It has no batch push: bulk is `apply_async` in a loop holding one producer, which
  was a little faster here than `group(...).apply_async()` (also one message at a time).
- **Dramatiq**: `--skip-logging`, the bench module setting WARNING (its CLI has no level flag);
  a supervisor and one worker process. When its queue is empty it sleeps with a growing
  back-off of up to 1 s before it looks again, which shows in its latency.
- **Huey**: `-q` is WARNING. Its Redis storage blocks on the queue (BRPOP), so it picks a job
  up at once.
- **RQ**: SimpleWorker runs one job at a time in the worker process (the default Worker forks a
  child per job, slower still); RQ keeps job hashes and results for 500 s by default.
- **arq**: started with `arq.run_worker` (its CLI logs a line per job at INFO, with no flag for
  WARNING), `max_jobs=10`. By default it polls its queue every 0.5 s and takes at most
  `queue_read_limit` = 100 jobs per poll, which caps a drain near 200 jobs/s and puts its
  latency around the poll interval; it keeps results for an hour by default."""
