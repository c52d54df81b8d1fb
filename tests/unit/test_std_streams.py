"""std_streams.make_usable with standard input closed (``<&-``): descriptor 0 goes to
/dev/null, so that no pipe or file opened later gets that number (a child's stdin would
replace it), and sys.stdin reads nothing instead of being None."""

from __future__ import annotations

import os
import subprocess
import sys

PROGRAM = """
import os, stat, sys
from sidequest import std_streams
assert sys.stdin is None
std_streams.make_usable()
print(sys.stdin.read() == "", os.path.samestat(os.fstat(0), os.stat(os.devnull)),
      os.get_inheritable(0), os.pipe()[0] > 2)
"""


def test_a_closed_input_becomes_dev_null() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                          timeout=30, check=False, preexec_fn=lambda: os.close(0))
    assert done.stdout.split() == ["True"] * 4, done.stderr
