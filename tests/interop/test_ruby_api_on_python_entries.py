"""Ruby's API acting on what Sidequest wrote, and Sidequest running what Ruby's API wrote.

Ruby's ``SortedEntry#reschedule`` finds its entry by re-serialising the job with
``JSON.generate``, so Sidequest must write exactly those bytes; Ruby's public
``JobSet#schedule`` writes a job as given, without ``queue``, ``jid`` or ``created_at``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from helpers import wait_for
from sidequest import client
from sidequest.payload import dumps

#: Every ASCII character, the line and paragraph separators, a BOM, non-BMP text and HTML.
STRINGS = [
    "".join(chr(c) for c in range(128)),
    "é ü ß 日本語 🎉 \u00a0\u2028\u2029\ufeff\U0010ffff",
    "</script><!-- & ' -->",
    "",
]

REGENERATE = """
emit("strings" => JSON.generate(INPUT["strings"]),
     "members" => Sidekiq::ScheduledSet.new.map { |e| [e.value, Sidekiq.dump_json(e.item)] })
"""

RESCHEDULE = """
entry = Sidekiq::ScheduledSet.new.find_job(INPUT["jid"])
entry.reschedule(Time.now + INPUT["in"])
emit(Sidekiq::ScheduledSet.new.map { |e| [e.jid, e.score] })
"""

DELETE = """
Sidekiq::ScheduledSet.new.find_job(INPUT["jid"]).delete
emit(Sidekiq::ScheduledSet.new.size)
"""


def test_strings_are_written_byte_for_byte_as_ruby_writes_them(
    run_ruby: Callable[..., Any], redis_url: str
) -> None:
    jid = client.push({"class": "InteropRecord", "args": [*STRINGS, 1, 0.5, 2**70, None],
                       "at": time.time() + 600})
    assert jid is not None
    out = run_ruby(REGENERATE, {"strings": STRINGS})
    assert out["strings"].encode("utf-8") == dumps(STRINGS).encode("utf-8")
    # Ruby re-serialises the stored member to the very same text.
    [[stored, regenerated]] = out["members"]
    assert regenerated == stored
    with redis.Redis.from_url(redis_url) as raw:
        assert raw.zrange("schedule", 0, -1) == [stored.encode("utf-8")]


def test_ruby_reschedules_and_deletes_a_python_entry_with_non_ascii_args(
    run_ruby: Callable[..., Any], python_worker: Callable[..., Any], ledger: Any,
    r: redis.Redis,
) -> None:
    args = ["héllo wörld", {"ключ": "日本語 🎉"}, "tab\tand\u2028"]
    gone = client.push({"class": "InteropRecord", "args": args, "at": time.time() + 600})
    jid = client.push({"class": "InteropRecord", "args": args, "at": time.time() + 600})
    assert jid is not None and gone is not None
    assert run_ruby(DELETE, {"jid": gone}) == 1
    entries = run_ruby(RESCHEDULE, {"jid": jid, "in": 1.5})
    # Moved, not copied: one entry, due in about 1.5 s (a copy would be due at once).
    assert [e[0] for e in entries] == [jid]
    assert entries[0][1] > time.time() + 0.5
    python_worker()
    ledger.wait_done([jid])
    wait_for(lambda: r.zcard("schedule") == 0, 5.0, "the schedule set to empty")
    ledger.check({jid: args}, runner="python")
    assert gone not in ledger.done()


SCHEDULE_BARE = """
class InteropRecord
  include Sidekiq::Job
end

now = Time.now.to_f
Sidekiq::ScheduledSet.new.schedule(now - 2, {"class" => "InteropRecord", "args" => ["bare"]})
jid = InteropRecord.perform_in(0.001, "behind")
Sidekiq::RetrySet.new.schedule(now - 1, {"class" => "InteropRecord", "args" => ["bare retry"]})
emit(jid)
"""


def test_a_job_ruby_scheduled_without_queue_runs_and_blocks_nothing(
    run_ruby: Callable[..., Any], python_worker: Callable[..., Any], ledger: Any,
    r: redis.Redis,
) -> None:
    run_ruby(SCHEDULE_BARE)
    python_worker()
    wait_for(lambda: len(ledger.done()) == 3, 20.0, "three jobs to run")
    runs = {json.loads(ledger.r.hget("args", jid) or "null")[0]: n
            for jid, n in ledger.done().items()}
    assert runs == {"bare": 1, "bare retry": 1, "behind": 1}
    assert all(len(jid) == 24 for jid in ledger.done())  # each got a jid of its own
    assert r.zcard("schedule") == 0 and r.zcard("retry") == 0 and r.zcard("dead") == 0
