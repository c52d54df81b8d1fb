#!/usr/bin/env python3
"""How fast one thread pushes jobs one at a time, by kind: plain, unique (a Lua script per
push), storing its result (a status hash written with the push) and scheduled. Each push is
one round trip; the kinds differ in the commands it carries. Prints each kind's rate and its
ratio to the plain push measured in the same rounds.

    .venv/bin/python bench/push_kinds.py                  # 5,000 pushes a kind, 5 rounds
    .venv/bin/python bench/push_kinds.py --pushes 1000 --rounds 3

A private redis-server is started on a free loopback port and stopped at the end. The kinds
are interleaved round by round, so that a busy moment of the host hits all of them; the
median of the rounds is printed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT / "src"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import sidequest  # noqa: E402
from bench.harness import PrivateRedis, cpu_model  # noqa: E402
from sidequest import Job  # noqa: E402


class Plain(Job):
    name = "bench.PushPlain"
    queue = "bench-push"


class Unique(Job):
    name = "bench.PushUnique"
    queue = "bench-push"
    unique_for = 3600


class Stored(Job):
    name = "bench.PushStored"
    queue = "bench-push"
    store_result = True


def kinds(round_index: int) -> dict[str, Callable[[int], object]]:
    """Each kind's push of job ``i``; unique arguments differ by round, so none is refused."""
    return {
        "plain": Plain.perform_async,
        "unique": lambda i: Unique.perform_async(round_index, i),
        "stored": Stored.perform_async,
        "scheduled": lambda i: Plain.perform_in(3600, i),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pushes", type=int, default=5000, help="pushes of each kind a round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each kind")
    args = parser.parse_args(argv)
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is missing: sudo apt-get install redis-server")
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="sidequest-push-bench-") as directory, \
            PrivateRedis(executable, Path(directory)) as redis_server:
        sidequest.configure(redis_url=redis_server.url())
        client = redis_server.client()
        for push in kinds(-1).values():  # warm up: a connection, the scripts loaded
            push(0)
        for index in range(args.rounds):
            for kind, push in kinds(index).items():
                started = time.perf_counter()
                for i in range(args.pushes):
                    push(i)
                seconds.setdefault(kind, []).append(time.perf_counter() - started)
                client.flushdb()
    print(f"{cpu_model()}; one thread, {args.pushes:,} pushes a kind a round,"
          f" median of {args.rounds}")
    rates = {kind: args.pushes / statistics.median(runs) for kind, runs in seconds.items()}
    for kind, rate in rates.items():
        print(f"{kind:>9}: {rate:8,.0f} pushes/s  {rate / rates['plain']:5.2f} x plain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
