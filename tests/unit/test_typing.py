"""Type checkers check an ``@job`` function's ``perform_async``/``perform_in``/``perform_at``
calls against the function's signature (ParamSpec): mypy flags exactly the wrong calls."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "typing" / "function_jobs.py"


def test_mypy_flags_exactly_the_wrong_calls() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file",
         "/dev/null", str(SAMPLE)],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        env={"MYPYPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    flagged = {int(n) for n in re.findall(rf"{re.escape(SAMPLE.name)}:(\d+): error", result.stdout)}
    lines = SAMPLE.read_text().splitlines()
    wrong = {i for i, line in enumerate(lines, 1) if line.endswith("# wrong")}
    assert wrong and flagged == wrong, result.stdout
