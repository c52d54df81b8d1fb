"""bench/async_bench.py runs end to end and prints its report.

No timing assertions (a loaded CI machine must not fail the suite): this proves the bench
still works. arq is compared when bench/.venvs/arq is installed (`make bench` installs it);
without it the bench runs Sidequest alone, as --systems sidequest asks.
"""

from __future__ import annotations

import re
from pathlib import Path

from helpers import need_redis, run_script

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "async_bench.py"
ARQ_PYTHON = ROOT / "bench" / ".venvs" / "arq" / "bin" / "python"


def test_quick_async_bench_prints_a_row_per_kind_and_system() -> None:
    need_redis()
    systems = ("sidequest", "arq") if ARQ_PYTHON.exists() else ("sidequest",)
    # 2,000 jobs, not --quick's 300: the cost window opens at the first completion the
    # bench's poller sees, and on a loaded CI machine an async drain of 300 was over by then
    # (no jobs in the window, so no rate).
    result = run_script(BENCH, "--quick", "-n", "2000", "--systems", ",".join(systems),
                        timeout=150.0)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert out.startswith("Async drain (") and "2,000 jobs a drain" in out, out
    for kind in ("sleep", "incr"):
        for system in systems:
            # kind, system, jobs/s, worker CPU us/job, Redis CPU us/job
            row = re.search(rf"^  {kind}\s+{system}\s+([\d,]+)\s+(\d+)\s+(\d+)$", out,
                            re.MULTILINE)
            assert row is not None, f"no {kind} row for {system}\n{out}"
            assert float(row.group(1).replace(",", "")) > 0, out
    if len(systems) == 2:
        assert re.search(r'^target "async drain: at least 2x arq": (met|not met) ', out,
                         re.MULTILINE), out
