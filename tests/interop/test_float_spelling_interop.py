"""Floats written byte for byte as Ruby's JSON.generate writes them.

Ruby's ``SortedEntry#reschedule`` addresses its entry as ``Sidekiq.dump_json(item)``, the
member re-serialised: ZINCRBY on any other text adds a second member, due at ``at - score``
(in 1970), and the job runs twice. Python's repr spells some floats otherwise than Ruby's
``Float#to_s`` (``1e+16``, ``1000000000000000.0``, ``1e-05`` for ``1.0e+16``, ``1.0e+15``,
``1.0e-05``); sidequest.rubyjson writes those as Ruby does.
"""

from __future__ import annotations

import math
import random
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from apps.interop_jobs import Record
from sidequest.payload import dumps, loads

#: Floats whose spelling differs between repr and Ruby, the boundaries around the ranges
#: where it does, and ones spelled alike.
FIXED = [
    1e15, -1e15, 1e16, 1e22, 1e100, 1.5e15, 1234567890123456.0, 1234567890123456.5,
    9999999999999998.0, 999999999999999.9, 123456789012345.0, 1e-5, 2.5e-05, 5e-324,
    -5e-324, 1e-4, 9.999999999999999e-05, 0.00012345, 1.7976931348623157e308,
    2.2250738585072014e-308, 0.1, 100.0, 0.0, -0.0, 1700000000.123456, 3.0, -0.5, 1e-7,
]

REGENERATE = """
lines = File.readlines(INPUT["path"], chomp: true)
emit(lines.each_with_index.filter_map { |line, i|
  again = JSON.generate(JSON.parse(line))
  [i, line, again] unless again == line
} + [lines.size])
"""


def many_floats(seed: int = 20240611) -> list[float]:
    """FIXED, powers of ten and their neighbours, and thousands of random doubles: 64-bit
    patterns over the whole range, and values near where the spellings change."""
    rng = random.Random(seed)
    values = list(FIXED)
    for exponent in range(-30, 31):
        power = float(f"1e{exponent}")
        values += [power, math.nextafter(power, 0), math.nextafter(power, math.inf), -power]
    while len(values) < 3000:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if math.isfinite(value):
            values.append(value)
    values += [rng.uniform(1e-7, 1e-3) for _ in range(1000)]
    values += [rng.uniform(1e13, 1e18) for _ in range(1000)]
    values += [float(rng.randrange(10**14, 10**17)) for _ in range(1000)]  # integral ones
    return values


def test_ruby_regenerates_every_float_we_write_to_the_same_bytes(
    run_ruby: Callable[..., Any], tmp_path: Path
) -> None:
    values = many_floats()
    # One per line alone, then a few whole payloads holding many at different depths.
    lines = [dumps([value]) for value in values]
    lines += [dumps({"class": "X", "args": [values[i : i + 50], {"v": values[i + 50]}],
                     "created_at": values[i + 51]}) for i in range(0, len(values) - 60, 500)]
    assert all(loads(line) is not None for line in lines)
    path = tmp_path / "floats.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    *mismatches, count = run_ruby(REGENERATE, {"path": str(path)}, timeout=120.0)
    assert count == len(lines)
    assert mismatches == [], f"{len(mismatches)} floats Ruby writes otherwise, first: " + (
        f"ours {mismatches[0][1]}, Ruby's {mismatches[0][2]}")


RESCHEDULE = """
before = Sidekiq::ScheduledSet.new.map { |e| [e.jid, e.value, Sidekiq.dump_json(e.item)] }
Sidekiq::ScheduledSet.new.find_job(INPUT["jid"]).reschedule(Time.now.to_f + 7200)
emit("before" => before, "after" => Sidekiq::ScheduledSet.new.map { |e| [e.jid, e.score] })
"""


def test_ruby_reschedules_a_python_entry_holding_such_floats_without_copying_it(
    run_ruby: Callable[..., Any], r: redis.Redis
) -> None:
    args = [1e16, 1e-5, 1234567890123456.5]
    jid = Record.perform_in(3600, *args)
    [stored] = r.zrange("schedule", 0, -1)
    assert loads(stored)["args"] == args
    out = run_ruby(RESCHEDULE, {"jid": jid})
    # Moved, not copied: one entry, due in about two hours (a copy would be due in 1970).
    assert [found for found, _ in out["after"]] == [jid], out["after"]
    [[_, score]] = out["after"]
    assert abs(score - (time.time() + 7200)) < 60
    assert r.zrange("schedule", 0, -1, withscores=True) == [(stored, score)]
    # Because Ruby re-serialises the stored member to the very same text.
    assert out["before"] == [[jid, stored, stored]]
