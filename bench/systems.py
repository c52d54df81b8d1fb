"""The systems the suite compares: how each is installed, started and fed.

Every worker runs one process with 10 jobs at a time where the system can (or its closest
equivalent), at log level WARNING, with its defaults otherwise: the bench measures what a
user gets, not what a tuned deployment gets. Only "drain, 2 processes" runs two such
processes, for the systems that say how (``two_processes``). Each Python system lives in its
own virtual environment under bench/.venvs/: each peer with a redis-py it accepts (and
hiredis, as Sidequest has), and Sidequest as `pip install sidequest` gets it, without the
development extras of the project's venv (which, for one, make redis-py import OpenTelemetry:
4 MB more in every worker).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.harness import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Sidequest's own dependency on 3.10
    import tomli as tomllib

VENVS = ROOT / "bench" / ".venvs"


def _default_install() -> tuple[str, ...]:
    """pip arguments for Sidequest's default install: the working tree (editable, so the
    bench runs the code as it is) with its required dependencies and no extras. Naming the
    dependencies puts them in the environment's stamp: a change of them rebuilds it."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    return ("-e", str(ROOT), *dependencies)


CONCURRENCY = "10"
QUEUE = "default"
SIDEKIQ_JOB = ROOT / "bench" / "sidekiq" / "bench_job.rb"
SIDEKIQ_PUSH = ROOT / "bench" / "sidekiq" / "push.rb"
SIDEKIQ_JOB_ALONE = ROOT / "bench" / "sidekiq" / "job_alone.rb"
SIDEKIQ_VERSION = "6.4.1"  # Debian bookworm's ruby-sidekiq

# (bin dir of the system's environment, Redis URL of the system's database) -> argv
Command = Callable[[Path, str], list[str]]
# How the system puts two worker processes on the machine for "drain, 2 processes":
# "flag": its worker command with -P 2 (its own supervisor forks them); "twice": the worker
# command started twice, as a user of a system without a multi-process mode would.
TwoProcesses = Literal["flag", "twice"]


@dataclass(frozen=True)
class System:
    name: str  # as given to --systems
    label: str  # as shown in the table
    model: str  # how it runs jobs at once
    bulk: str  # how the bulk figure pushes
    worker: Command
    batched: bool = True  # False: the system has no batch push, bulk is a loop
    venv: str | None = None  # bench/.venvs/<venv>; None: the project's venv, or Ruby
    #: Run from the project's venv while bench/.venvs/<venv> is not built (--quick and
    #: --skip-install do not build it); the report then says "project venv".
    project_fallback: bool = False
    requirements: tuple[str, ...] = ()
    reported: tuple[str, ...] = ()  # distributions whose versions the report states
    worker_env: dict[str, str] = field(default_factory=dict)
    two_processes: TwoProcesses | None = None  # None: "drain, 2 processes" is not measured
    async_jobs: bool = False  # its bench job is ``async def`` (redis.asyncio)

    @property
    def ruby(self) -> bool:
        return self.name == "sidekiq"

    def bin_dir(self) -> Path:
        own = VENVS / self.venv / "bin" if self.venv is not None else None
        if own is None or (self.project_fallback and not (own / "python").exists()):
            return Path(sys.executable).parent
        return own

    @property
    def in_project_venv(self) -> bool:
        return self.bin_dir() == Path(sys.executable).parent

    def pusher(self) -> list[str]:
        if self.ruby:
            return ["ruby", str(SIDEKIQ_PUSH)]
        module = self.name.split("-")[0]  # celery-threads and celery-prefork share one
        return [str(self.bin_dir() / "python"), "-m", "bench.agents.push", module]

    def job_alone(self, count: int) -> list[str]:
        """The command that runs the system's bench job alone, ``count`` times, on one thread
        (bench/agents/job_alone.py, bench/sidekiq/job_alone.rb)."""
        if self.ruby:
            return ["ruby", str(SIDEKIQ_JOB_ALONE), "--count", str(count)]
        flags = ["--async"] if self.async_jobs else []
        return [str(self.bin_dir() / "python"), "-m", "bench.agents.job_alone", "--count",
                str(count), *flags]

    def two_process_workers(self, url: str) -> list[list[str]]:
        """The commands that together run two worker processes; none without such a mode."""
        command = self.worker(self.bin_dir(), url)
        if self.two_processes == "flag":
            return [[*command, "-P", "2"]]
        if self.two_processes == "twice":
            return [command, command]
        return []


def _sidequest(bin_dir: Path, url: str) -> list[str]:
    return [str(bin_dir / "python"), "-m", "sidequest", "-r", "bench.jobs", "-c", CONCURRENCY,
            "--log-level", "WARNING", "-q", QUEUE]


def _sidekiq(bin_dir: Path, url: str) -> list[str]:
    # The log level is set in the required file (Sidekiq 6 has no flag for it).
    return ["sidekiq", "-r", str(SIDEKIQ_JOB), "-c", CONCURRENCY, "-q", QUEUE]


def _celery(pool: str) -> Command:
    def command(bin_dir: Path, url: str) -> list[str]:
        return [str(bin_dir / "celery"), "-A", "bench.agents.celery_app", "worker",
                "--pool", pool, "-c", CONCURRENCY, "-l", "WARNING", "-Q", QUEUE]

    return command


def _dramatiq(bin_dir: Path, url: str) -> list[str]:
    return [str(bin_dir / "dramatiq"), "bench.agents.dramatiq_app", "--processes", "1",
            "--threads", CONCURRENCY, "--queues", QUEUE, "--skip-logging"]


def _huey(bin_dir: Path, url: str) -> list[str]:
    return [str(bin_dir / "huey_consumer"), "bench.agents.huey_app.huey", "-w", CONCURRENCY,
            "-k", "thread", "-q"]


def _rq(bin_dir: Path, url: str) -> list[str]:
    return [str(bin_dir / "rq"), "worker", "--worker-class", "rq.worker.SimpleWorker",
            "--url", url, "--logging_level", "WARNING", "--path", str(ROOT), QUEUE]


def _arq(bin_dir: Path, url: str) -> list[str]:
    return [str(bin_dir / "python"), "-m", "bench.agents.arq_app"]


CELERY_REQ = ("celery[redis]==5.7.0", "redis[hiredis]>=6.1")  # kombu wants redis-py >= 6.1
CELERY_VERSIONS = ("celery", "kombu", "redis", "hiredis")
# No batch push in Celery (group().apply_async() publishes one by one too, a little slower).
CELERY_BULK = "loop of apply_async() on one producer"

SYSTEMS: tuple[System, ...] = (
    System("sidequest", "Sidequest", "10 threads", "perform_bulk, 1,000 a call", _sidequest,
           venv="sidequest", requirements=_default_install(), project_fallback=True,
           reported=("sidequest", "redis", "hiredis"), two_processes="flag"),
    # Sidekiq's free edition has no multi-process mode (Enterprise's swarm is one).
    System("sidekiq", f"Sidekiq {SIDEKIQ_VERSION} (Ruby)", "10 threads",
           "Sidekiq::Client.push_bulk, 1,000 a call", _sidekiq, two_processes="twice"),
    System("celery-threads", "Celery threads", "--pool threads -c 10",
           CELERY_BULK, _celery("threads"), batched=False, venv="celery",
           requirements=CELERY_REQ, reported=CELERY_VERSIONS),
    System("celery-prefork", "Celery prefork", "--pool prefork -c 10 (10 processes)",
           CELERY_BULK, _celery("prefork"), batched=False, venv="celery",
           requirements=CELERY_REQ, reported=CELERY_VERSIONS),
    System("dramatiq", "Dramatiq", "--processes 1 --threads 10", "loop of send()", _dramatiq,
           batched=False, venv="dramatiq",
           requirements=("dramatiq[redis]==2.2.1", "redis[hiredis]"),
           reported=("dramatiq", "redis", "hiredis"), worker_env={"BENCH_WORKER": "1"}),
    System("huey", "Huey", "-w 10 -k thread", "loop of calls", _huey, batched=False,
           venv="huey",
           requirements=("huey==3.5.4", "redis[hiredis]"), reported=("huey", "redis", "hiredis")),
    System("rq", "RQ SimpleWorker", "1 job at a time (RQ has no threaded worker)",
           "enqueue_many, 1,000 a call", _rq, venv="rq",
           requirements=("rq==3.0.0", "redis[hiredis]"),
           reported=("rq", "redis", "hiredis")),
    System("arq", "arq", "asyncio, max_jobs=10", "loop of enqueue_job()", _arq, batched=False,
           venv="arq",
           requirements=("arq==0.28.0", "redis[hiredis]<6"),  # arq 0.28 wants redis-py < 6
           reported=("arq", "redis", "hiredis"), async_jobs=True),
)

BY_NAME = {system.name: system for system in SYSTEMS}

# The chart is drawn in an environment of its own, so the project's venv stays lean.
PLOT_VENV = "plot"
PLOT_REQ = ("matplotlib==3.11.2",)
