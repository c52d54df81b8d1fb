"""A process that uses one limiter from several threads, for tests/integration/test_limiter.py.

    python -m apps.limiter_load KIND NAME LIMIT INTERVAL THREADS SECONDS [HOLD]

Prints one JSON line: the Redis times (ms) of the calls it was allowed. HOLD (seconds) is how
long a concurrent slot is kept. REDIS_URL says where Redis is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sidequest import OverLimit, limiter

TESTS = Path(__file__).resolve().parents[1]


def run_load(redis_url: str, *args: Any) -> subprocess.Popen[str]:
    """Start this module as a process with ``args`` (see the module's doc)."""
    env = {**os.environ, "REDIS_URL": redis_url, "SIDEQUEST_REDIS_URL": redis_url,
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "apps.limiter_load", *map(str, args)],
                            env=env, stdout=subprocess.PIPE, text=True)


def stamps_of(procs: list[subprocess.Popen[str]]) -> list[int]:
    """Wait for the processes; the Redis times of every call they were allowed, sorted."""
    out: list[int] = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"limiter load process exited {proc.returncode}"
        out += json.loads(stdout)
    return sorted(out)


def main(argv: list[str]) -> None:
    kind, name, limit, interval = argv[0], argv[1], int(argv[2]), float(argv[3])
    threads, seconds = int(argv[4]), float(argv[5])
    hold = float(argv[6]) if len(argv) > 6 else 0.0
    made = (limiter.concurrent(name, limit, lock_timeout=interval) if kind == "concurrent"
            else getattr(limiter, kind)(name, limit, interval))
    stamps: list[int] = []
    end = time.monotonic() + seconds

    def hammer() -> None:
        while time.monotonic() < end:
            try:
                stamps.append(made.acquire())
            except OverLimit:
                time.sleep(0.002)
                continue
            time.sleep(hold)
            made.release()

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps(stamps), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
