"""mypy and pyright check enqueue calls against ``perform``: tests/typing/enqueue_calls.py
(Job classes, ``.set(...)`` and ``@job`` functions) marks each wrong call with
``# error: CODE``; the checkers must flag exactly those lines, and nothing else."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT / "tests" / "typing" / "enqueue_calls.py"
MARK = re.compile(r"#\s*error:\s*([a-z-]+)\s*$")
CI = os.environ.get("CI") == "true"


def expected() -> dict[int, str]:
    lines = CALLS.read_text().splitlines()
    return {n: m.group(1) for n, line in enumerate(lines, 1) if (m := MARK.search(line))}


def test_the_file_has_right_and_wrong_calls() -> None:
    # Guards the other tests: a file that lost its marks would make them pass vacuously.
    assert len(expected()) >= 10
    assert "def right_calls" in CALLS.read_text()


def test_mypy_flags_exactly_the_wrong_calls(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--hide-error-context",
         "--cache-dir", str(tmp_path / "cache"), str(CALLS)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    found: dict[int, str] = {}
    for line in result.stdout.splitlines():
        m = re.match(r".*enqueue_calls\.py:(\d+): error: .*\[([a-z-]+)\]$", line)
        if m:
            found[int(m.group(1))] = m.group(2)
        else:
            assert ": note: " in line, f"unexpected mypy output: {line}\n{result.stderr}"
    assert found == expected(), result.stdout


@pytest.mark.skipif(importlib.util.find_spec("pyright") is None and not CI,
                    reason="pyright not installed (pip install -e '.[dev]')")
def test_pyright_flags_exactly_the_wrong_calls() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", str(CALLS)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"pyright did not run: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
    lines = {d["range"]["start"]["line"] + 1 for d in errors}
    assert lines == set(expected()), json.dumps(errors, indent=1)
