"""Installs what the suite compares, and reports the versions it then runs.

Python systems: one virtual environment each under bench/.venvs/<name> (gitignored): the
peers from PyPI, pinned in bench/systems.py, and Sidequest's default install; an environment
is rebuilt only when its requirements change (a stamp file holds the list it was built
from). Ruby Sidekiq: Debian's ruby-sidekiq through apt-get when we are root; otherwise the
command to run is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.harness import ROOT, BenchError, progress
from bench.systems import PLOT_REQ, PLOT_VENV, SIDEKIQ_VERSION, VENVS, System

STAMP = ".bench-requirements"
PIP_TIMEOUT = 900.0
RUBY_VERSIONS = ('require "sidekiq"; require "redis"; require "connection_pool";'
                 ' puts [RUBY_VERSION, Sidekiq::VERSION, Redis::VERSION,'
                 ' ConnectionPool::VERSION].join(" ")')


def _run(command: list[str], timeout: float = PIP_TIMEOUT,
         env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{' '.join(command)}: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise BenchError(f"{' '.join(command)} failed ({done.returncode}):\n{tail}")
    return done.stdout


def base_python() -> str:
    # The interpreter behind the project's venv, so every environment runs the same Python.
    return getattr(sys, "_base_executable", None) or sys.executable


def venv_ready(name: str, requirements: tuple[str, ...]) -> bool:
    path = VENVS / name
    stamp = path / STAMP
    return ((path / "bin" / "python").exists() and stamp.exists()
            and stamp.read_text() == "\n".join(requirements))


def ensure_venv(name: str, requirements: tuple[str, ...]) -> None:
    if venv_ready(name, requirements):
        return
    path = VENVS / name
    progress(f"installing {name} into {path}: {' '.join(requirements)}\n")
    _run([base_python(), "-m", "venv", "--clear", str(path)])
    pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "--quiet", *requirements])
    (path / STAMP).write_text("\n".join(requirements))


def sidekiq_versions() -> list[str] | None:
    """Ruby, Sidekiq, redis-rb and connection_pool versions; None when Sidekiq is missing."""
    try:
        out = _run(["ruby", "-e", RUBY_VERSIONS], timeout=60)
    except BenchError:
        return None
    return out.split()


def ensure_sidekiq() -> None:
    if sidekiq_versions() is not None:
        return
    if os.geteuid() != 0:
        raise BenchError("Ruby Sidekiq is missing: run `sudo apt-get install ruby-sidekiq`"
                         " (or leave it out: --systems sidequest,celery-threads,...)")
    progress("installing ruby-sidekiq with apt-get\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update"], env=env)
    _run(["apt-get", "install", "-y", "ruby-sidekiq"], env=env)
    if sidekiq_versions() is None:
        raise BenchError("ruby-sidekiq is installed but `require \"sidekiq\"` still fails")


def ensure(systems: list[System], chart: bool) -> None:
    for system in systems:
        if system.ruby:
            ensure_sidekiq()
        elif system.venv is not None:
            ensure_venv(system.venv, system.requirements)
    if chart:
        ensure_venv(PLOT_VENV, PLOT_REQ)


def check_installed(systems: list[System], chart: bool) -> None:
    """--skip-install: fail now, not half an hour in, when something is missing."""
    missing = [s.name for s in systems if s.venv is not None and not s.project_fallback
               and not (VENVS / s.venv / "bin" / "python").exists()]
    if any(s.ruby for s in systems) and sidekiq_versions() is None:
        missing.append("sidekiq")
    if chart and not (VENVS / PLOT_VENV / "bin" / "python").exists():
        missing.append(f"{PLOT_VENV} (matplotlib, for the chart; or --no-write)")
    if missing:
        raise BenchError(f"not installed: {', '.join(missing)}; run without --skip-install")


def versions(system: System) -> str:
    """One line: what this system ran on, as its own environment reports it."""
    if system.ruby:
        found = sidekiq_versions() or ["?", "?", "?", "?"]
        ruby, sidekiq, redis_rb, pool = found[:4]
        note = "" if sidekiq == SIDEKIQ_VERSION else f" (expected {SIDEKIQ_VERSION})"
        return (f"sidekiq {sidekiq}{note}, redis-rb {redis_rb}, connection_pool {pool},"
                f" ruby {ruby} (Debian packages)")
    python = system.bin_dir() / "python"
    script = ("import json, sys, importlib.metadata as m; print(json.dumps("
              "{n: m.version(n) for n in sys.argv[1:]}))")
    found = json.loads(_run([str(python), "-c", script, *system.reported], timeout=60))
    where = "project venv" if system.in_project_venv else f"bench/.venvs/{system.venv}"
    text = ", ".join(f"{n} {v}" for n, v in found.items()) + f" ({where})"
    return text + git_text() if system.name == "sidequest" else text


def git_text() -> str:
    """Which Sidequest was measured: the commit, and whether src/ differed from it."""
    try:
        commit = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], timeout=30)
        dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], timeout=30)
    except BenchError:
        return ""
    return f", git {commit.strip()}" + (" with uncommitted changes in src/" if dirty else "")


def plot_python() -> Path:
    return VENVS / PLOT_VENV / "bin" / "python"
