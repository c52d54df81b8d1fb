"""The comparison suite (bench/suite.py) runs end to end in its quick form, and its proxy works.

No timing assertions on the systems: how fast is the suite's business (``make bench``), and a
loaded CI machine must not fail the suite. This proves the harness has not rotted: the quick
form measures Sidequest alone on every workload and prints the table.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from helpers import need_redis, run_script
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "bench" / "suite.py"
PROXY = ROOT / "bench" / "latency_proxy.py"
DOC = ROOT / "docs" / "performance.md"
TIMEOUT = 100.0  # under pytest's own 120 s, so that we, not pytest, stop the suite
HEADS = ("drain jobs/s", "drain, 2 processes jobs/s", "drain +1 ms jobs/s",
         "bulk enqueue jobs/s", "single enqueue jobs/s", "latency p50 ms", "latency p99 ms",
         "peak RSS MB")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report, suite, targets  # noqa: E402
from bench.harness import BenchError, terminate_all, wait_count  # noqa: E402
from bench.systems import BY_NAME  # noqa: E402


@pytest.mark.slow  # a load test: run once, not on every Python
def test_quick_suite_measures_every_workload_and_prints_the_table() -> None:
    need_redis()
    before = DOC.stat().st_mtime if DOC.exists() else None
    # 5,000 jobs, not --quick's 2,000: the cost window opens at the first completion the
    # bench sees, and on a loaded machine that came so late that the window held too few
    # jobs for a clock that ticks every 10 ms (Redis CPU read 0 us a job).
    result = run_script(SUITE, "--quick", "--no-write", "-n", "5000", timeout=TIMEOUT)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    lines = out.splitlines()
    head = next((line for line in lines if line.startswith("system ")), None)
    assert head is not None, out
    for label in HEADS:
        assert label in head, head
    row = next((line for line in lines if re.match(r"Sidequest +[\d,]", line)), None)
    assert row is not None, out
    numbers = re.findall(r"[\d,]+(?:\.\d+)?", row)
    assert len(numbers) == len(HEADS), row  # a value in every column, none "failed"
    for label in ("machine ", "redis ", "versions", "load "):
        assert label in out, out
    after = DOC.stat().st_mtime if DOC.exists() else None
    assert before == after, "--quick must not rewrite docs/performance.md"
    # The cost per drained job, from /proc and Redis's INFO: a figure in each column.
    costs = lines[lines.index(next(line for line in lines if line.startswith("Cost per"))):]
    assert all(label in costs[1] for label in ("worker CPU", "switches", "Redis CPU",
                                               "the job alone", "own CPU")), costs
    cpu, voluntary, involuntary, redis_cpu, job, own = (
        float(n.replace(",", "")) for n in re.findall(r"-?[\d,]+(?:\.\d+)?", costs[2]))
    assert cpu > 0 and redis_cpu > 0 and voluntary + involuntary > 0, costs
    # The job alone is one INCR through redis-py: it cannot cost nothing, and the system's
    # own share is what is left of the worker's CPU (printed rounded: within 1 us).
    assert job > 0 and abs(cpu - job - own) <= 1.0, costs


def test_quick_changes_only_the_defaults() -> None:
    quick = suite.parse_args(["--quick"])
    assert quick.systems == ("sidequest",)
    assert not quick.install and not quick.write
    assert quick.runs == 1 and quick.jobs < 100_000
    full = suite.parse_args(["--systems", "sidequest,rq", "--jobs", "500", "--runs", "4"])
    assert full.systems == ("sidequest", "rq")
    assert (full.jobs, full.runs, full.proxy_jobs) == (500, 4, 100)
    assert full.install and full.write
    default = suite.parse_args([])
    assert (default.jobs, default.runs, default.latency_jobs) == (100_000, 3, 1_000)
    assert default.max_gap == 2.0 and "sidekiq" in default.systems


def test_sidequest_is_measured_as_its_default_install() -> None:
    """Its own environment: the working tree with the required dependencies of pyproject.toml
    and no extras (the project's venv has the development ones); the project's venv only
    while that environment is not built, and then the report says so."""
    sidequest = BY_NAME["sidequest"]
    with open(ROOT / "pyproject.toml", "rb") as file:
        required = tomllib.load(file)["project"]["dependencies"]
    assert sidequest.requirements == ("-e", str(ROOT), *required)
    assert not any("[" in requirement for requirement in sidequest.requirements)
    built = dataclasses.replace(sidequest, venv="sidequest-default-install-test")
    assert built.bin_dir() == Path(sys.executable).parent and built.in_project_venv
    strict = dataclasses.replace(built, project_fallback=False)
    assert strict.bin_dir().parent.name == "sidequest-default-install-test"
    assert not strict.in_project_venv


def test_unknown_system_is_refused() -> None:
    with pytest.raises(SystemExit):
        suite.parse_args(["--systems", "sidequest,nosuch"])


def test_latency_percentiles_from_recorded_timestamps() -> None:
    # Job i was pushed at 100 + i and started i + 1 ms later: delays of 1..100 ms; the first
    # push (which opened the pusher's connection) took 500 ms and is left out.
    entries = [f"{100.0 + i} {100.0 + i + (i + 1) / 1000}".encode() for i in range(100)]
    entries.insert(37, b"99.0 99.5")
    p50, p99 = report.latency_percentiles(entries)
    assert p50 == pytest.approx(50.5, abs=0.01)
    assert p99 == pytest.approx(99.01, abs=0.01)


def sample(drain: float, drain2: float | None = None) -> report.Sample:
    return report.Sample(1.0, 2.0, drain, 40.0, 1.0, 5.0, 3.0, drain2)


def two_process_results() -> report.Results:
    # Sidequest and Sidekiq have a two-process drain, RQ has none; Celery failed every run.
    results = report.Results(systems=["sidequest", "sidekiq", "rq", "celery-threads"])
    results.samples = {
        "sidequest": [sample(900, 1000), sample(1100, 3000), sample(1000, 2000)],
        "sidekiq": [sample(800, 500), sample(800, 1500)],
        "rq": [sample(100), sample(300)],
    }
    results.failures = {"celery-threads": ["run 1: the worker exited"]}
    return results


def figure(key: str) -> report.Figure:
    return next(fig for fig in report.FIGURES if fig.key == key)


def test_medians_and_spreads_leave_out_runs_without_the_figure() -> None:
    results = two_process_results()
    results.samples["sidequest"].append(sample(1000))  # a run without it is no zero
    assert results.median("sidequest", "drain2") == 2000
    assert results.spread("sidequest", "drain2") == (1000, 3000)
    assert results.median("rq", "drain2") is None
    assert results.spread("rq", "drain2") is None
    assert results.median("rq", "drain") == 200


def test_two_process_drain_shows_dash_where_not_measured_and_failed_where_failed() -> None:
    results = two_process_results()
    drain2 = figure("drain2")
    assert report.cell(results, "sidequest", drain2) == "2,000"
    assert report.cell(results, "sidekiq", drain2) == "1,000 (0.50x)"
    assert report.cell(results, "rq", drain2) == "-"
    assert report.cell(results, "rq", figure("drain")) == "200 (0.20x)"
    assert report.cell(results, "celery-threads", drain2) == "-"  # never measured
    assert report.cell(results, "celery-threads", figure("drain")) == "failed"
    column = 1 + report.FIGURES.index(drain2)
    rows = {line.split("|")[1].strip(): line.split("|")[1 + column].strip()
            for line in report.markdown_table(results)[2:]}
    assert rows == {"Sidequest": "2,000", BY_NAME["sidekiq"].label: "1,000 (0.50x)",
                    "RQ SimpleWorker": "-", "Celery threads": "-"}
    spread = {line.split("|")[1].strip(): line.split("|")[1 + column].strip()
              for line in report.spread_table(results)[2:]}
    assert spread["Sidequest"] == "1,000 - 3,000" and spread["RQ SimpleWorker"] == "-"
    assert any(line.startswith('"-" = not measured: drain, 2 processes')
               for line in report.notes(results))


def test_no_not_measured_note_when_every_system_has_the_figure() -> None:
    results = two_process_results()
    results.systems = ["sidequest", "sidekiq"]
    assert not any("not measured" in line for line in report.notes(results))


def test_chart_draws_only_the_systems_a_figure_is_measured_for() -> None:
    panels = {panel["key"]: panel for panel in report.chart_data(two_process_results())["figures"]}
    sidekiq = BY_NAME["sidekiq"].label
    assert panels["drain2"]["systems"] == ["Sidequest", sidekiq]
    assert panels["drain2"]["values"] == [2000, 1000]
    assert panels["drain"]["systems"] == ["Sidequest", sidekiq, "RQ SimpleWorker",
                                          "Celery threads"]
    assert panels["drain"]["values"] == [1000, 800, 200, None]  # None: drawn as failed


def test_two_worker_processes_are_sidequest_p2_and_two_sidekiqs() -> None:
    url = "redis://127.0.0.1:1/0"
    sidequest, sidekiq = BY_NAME["sidequest"], BY_NAME["sidekiq"]
    one = sidequest.worker(sidequest.bin_dir(), url)
    assert sidequest.two_process_workers(url) == [[*one, "-P", "2"]]
    assert sidekiq.two_process_workers(url) == [sidekiq.worker(sidekiq.bin_dir(), url)] * 2
    for name in ("celery-threads", "celery-prefork", "dramatiq", "huey", "rq", "arq"):
        assert BY_NAME[name].two_process_workers(url) == [], name


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_wait_count_fails_when_any_of_the_workers_exits() -> None:
    alive, dead = sleeper(), subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    try:
        dead.wait(30)
        with pytest.raises(BenchError, match=rf"pid {dead.pid}\) exited \(code 3\)"):
            wait_count(lambda: 0, 10, alive, dead, stall=5)
    finally:
        terminate_all([alive, dead], 10)


def test_terminate_all_stops_every_process() -> None:
    procs = [sleeper(), sleeper()]
    terminate_all(procs, 10)
    assert [proc.returncode for proc in procs] == [-signal.SIGTERM] * 2


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[str]:
    target = f"{redis_server.host}:{redis_server.port}"
    proc = subprocess.Popen([sys.executable, str(PROXY), "--target", target, "--delay-ms", "5"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on "), line
        yield f"redis://{line.removeprefix('listening on ')}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def test_latency_proxy_delays_each_way_and_keeps_the_bytes(proxy: str) -> None:
    client = redis.Redis.from_url(proxy)
    with client:
        big = os.urandom(1 << 20)  # more than one read: chunks must stay in order
        client.set("bench:proxy", big)
        assert client.get("bench:proxy") == big
        start = time.perf_counter()
        client.ping()
        # A delay cannot come early: a round trip is at least 5 ms there and 5 ms back.
        assert time.perf_counter() - start >= 0.0095
        pipe = client.pipeline(transaction=False)
        for _ in range(200):
            pipe.incr("bench:proxy:n")
        assert pipe.execute()[-1] == 200


def test_targets_are_checked_against_the_run() -> None:
    results = report.Results(systems=["sidequest", "sidekiq", "huey"])
    # single, bulk, drain, rss, p50, p99, proxy, drain2
    results.samples = {
        "sidequest": [report.Sample(9e3, 2e5, 12e3, 44.0, 0.7, 1.5, 7e3, 18e3, 95.0, 3.1, 1.2,
                                    30.0, 40.0)],
        "sidekiq": [report.Sample(9e3, 1.8e5, 11e3, 60.0, 0.8, 1.4, 2.5e3, 16e3, 90.0, 1.0, 0.4,
                                  35.0, 25.0)],
        "huey": [report.Sample(2e3, 1e4, 3.5e3, 37.0, 1.0, 4.0, 1e3)],
    }
    met = {check.target: (check.measured, check.met) for check in targets.checks(results)}
    assert met["worker CPU per drained job at most Sidekiq 6.4.1 (Ruby)'s"] == (
        "95 us vs 90 us", False)
    # Less each job alone (40 and 25 us): 55 against 65.
    assert met["the system's own CPU per drained job at most Sidekiq 6.4.1 (Ruby)'s"] == (
        "55 us vs 65 us", True)
    assert met["under one involuntary context switch per drained job"] == ("1.20", False)
    assert met["drain: at least as fast as Sidekiq 6.4.1 (Ruby)"] == ("1.09x", True)
    assert met["drain through the 1 ms proxy: at least 3x Sidekiq 6.4.1 (Ruby)"] == (
        "2.80x", False)
    assert met["drain: at least 4x Huey"] == ("3.4x", False)
    # 3x Sidekiq through the proxy is 7,500 jobs/s, below Sidequest's 12,000 without it: no
    # note. Against a Sidekiq at 4,500 (13,500 needed), the target is out of reach.
    results.samples["sidekiq"][0] = dataclasses.replace(results.samples["sidekiq"][0],
                                                        proxy=4.5e3)
    met = {check.target: (check.measured, check.met) for check in targets.checks(results)}
    assert met["drain through the 1 ms proxy: at least 3x Sidekiq 6.4.1 (Ruby)"] == (
        "1.56x (3x is 13,500 jobs/s, above Sidequest's drain without the proxy, 12,000)",
        False)
    assert met["latency p99 under 2 ms (idle, one queue)"] == ("1.5 ms", True)
    assert met["-P 2 faster than -P 1"] == ("1.50x", True)
    assert met["-P 2 faster than two Sidekiq 6.4.1 (Ruby) processes"] == ("1.12x", True)
    page = "\n".join(targets.markdown(results))
    assert "| drain: at least 4x Huey | 3.4x | no |" in page
    alone = report.Results(systems=["sidequest"])
    alone.samples = {"sidequest": results.samples["sidequest"]}
    assert not any("Sidekiq" in c.target for c in targets.checks(alone))


def test_the_page_has_its_table_targets_and_method() -> None:
    results = report.Results(systems=["sidequest", "sidekiq"])
    results.samples = {"sidequest": [sample(1000, 1500)], "sidekiq": [sample(900, 1400)]}
    setup = report.Setup("2026-01-01", "2 CPUs", "3.11", "redis 7", "small", {
        "sidequest": "sidequest 0.1", "sidekiq": "sidekiq 6.4.1"}, "bench/suite.py --quick")
    page = report.markdown(setup, results)
    for part in ("# Performance", "| Sidequest | 1,000 |", "## Targets", "## Setup",
                 "## Method", "- **drain, 2 processes**:", "bench/suite.py --quick"):
        assert part in page, part


@pytest.mark.parametrize("name", ["sidequest", "sidekiq", "arq"])
def test_the_job_alone_runs_the_bench_job_and_prints_its_cpu(name: str, redis_url: str) -> None:
    system = BY_NAME[name]
    if system.ruby and shutil.which("ruby") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ruby is missing")
        pytest.skip("ruby is missing (`make ruby`)")
    # The project's venv runs the Python job (arq's own venv may not be installed): the
    # command's flags, not its interpreter, are what this checks.
    command = system.job_alone(300)
    if not system.ruby:
        command[0] = sys.executable
    counter = redis_url.rsplit("/", 1)[0] + "/1"
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BENCH_COUNTER_URL": counter,
                               "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 0, done.stderr
    line = report.json_line(done.stdout.strip().splitlines()[-1])
    assert line["count"] == 300 and line["cpu_us"] > 0 and line["seconds"] > 0
    # Every run counted itself, the warm-up's too: the job's own work, not a stand-in.
    counted = redis.Redis.from_url(counter).get("bench:done")
    assert int(counted or 0) == 300 + 200
