"""B1-B8 against a worker subprocess: bad payloads pushed raw into Redis each end in exactly
one terminal state (done in the ledger, retry or dead), and the worker stays alive.

tests/integration/test_bad_input.py covers the same ground in-process; this one runs the real
command line, so a crash would kill a process, not a test thread.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fault.conftest import SpawnWorker
from fault.harness import Ledger, Worker
from helpers import wait_for
from sidequest import retry
from sidequest.errors import PayloadError
from sidequest.payload import decode
from sidequest.worker.failures import UNREADABLE_CLASS

MB = 1024 * 1024


def jid() -> str:
    return os.urandom(12).hex()


def job(cls: str = "fault.Record", args: Any = (), **fields: Any) -> bytes:
    body = {"class": cls, "args": list(args) if isinstance(args, tuple) else args, "jid": jid(),
            "queue": "default", **fields}
    return json.dumps(body).encode()


def expected(raw: bytes) -> str:
    """Where a payload must end: dead (unreadable, or no retries), retry or done."""
    try:
        payload = decode(raw)
    except PayloadError:
        return "dead"
    if payload["class"] == "fault.Record":
        return "done"
    attempts = retry.max_attempts(payload.get("retry", True))
    return "dead" if attempts is not None and attempts <= 0 else "retry"


def locate(raw: bytes, r: redis.Redis, ledger: Ledger) -> list[str]:
    """Every place the payload is found: one entry per copy."""
    try:
        key = decode(raw).get("jid")
    except PayloadError:
        key = None
    places = []
    if key is not None:
        places += ["done"] * ledger.counts("done")[key]
    for zset in ("retry", "dead"):
        for member in r.zrange(zset, 0, -1):
            if member == raw or _holds(member, raw, key):
                places.append(zset)
    return places


def _holds(member: bytes, raw: bytes, key: Any) -> bool:
    """The entry is the payload's job (its jid), or keeps JSON that is no job as its one
    argument (Sidekiq's Dead page needs every entry to be an object)."""
    if not member.startswith(b"{"):
        return False
    try:
        entry = json.loads(member)
    except (ValueError, RecursionError):
        return False
    if key is not None and entry.get("jid") == key:
        return True
    return entry.get("class") == UNREADABLE_CLASS and entry.get("args") == [
        raw.decode("utf-8", "replace")]


def push_and_check(payloads: list[bytes], r: redis.Redis, ledger: Ledger,
                   worker: Worker, timeout: float = 20) -> None:
    r.delete("retry", "dead")
    r.lpush("queue:default", *payloads)
    wait_for(lambda: not r.llen("queue:default") and not r.keys("sq:inprogress:*")
             and all(locate(p, r, ledger) for p in payloads), timeout=timeout,
             what="every payload in a terminal state")
    for raw in payloads:
        assert locate(raw, r, ledger) == [expected(raw)], raw[:200]
    assert worker.alive, worker.log()


BAD = [
    b"{not json",
    b"",
    b"null",
    b"42",
    b'{"class":"X","args":[1,',  # truncated
    b'{"args":[],"jid":"no-class"}',
    job(args="not a list"),
    job(queue=5),
    job(queue=["default"]),
    job(cls="Nope", retry="yes"),  # wrong type: read as the default (25 retries)
    job(cls="Nope", retry=-3),  # no retries left: dead at once
    job(retry={"a": 1}, args=[1, 2]),  # wrong type, but the job runs fine
    b'\xff\xfe{"class":"X"}',  # invalid UTF-8
    job(args=["\udcff"]).replace(b"\\udcff", b"\xed\xb3\xbf"),  # a surrogate as raw UTF-8
    job(args=["\ud800"]),  # lone surrogate, as a JSON escape: valid JSON, runs
    job(cls="Nope", args=["\ud800"]),  # ... and its failure is stored
    b"[" * 100_000 + b"]" * 100_000,
    job(args=[0]).replace(b"[0]", b"[" * 100_000 + b"]" * 100_000),
]


def test_bad_payloads_each_end_in_one_state(spawn: SpawnWorker, r: redis.Redis,
                                            ledger: Ledger) -> None:
    worker = spawn("-c", "4")
    worker.wait_registered(r)
    push_and_check(BAD, r, ledger, worker)


def test_lone_surrogate_in_class_name(spawn: SpawnWorker, r: redis.Redis,
                                      ledger: Ledger) -> None:
    worker = spawn("-c", "1")
    worker.wait_registered(r)
    push_and_check([job(cls="\ud800", args=[])], r, ledger, worker, timeout=5)


def test_50mb_payloads(spawn: SpawnWorker, r: redis.Redis, ledger: Ledger) -> None:
    worker = spawn("-c", "2")
    worker.wait_registered(r)
    big = job(args=["x" * (50 * MB)])
    garbage = b"{" + b"x" * (50 * MB)
    push_and_check([big, garbage], r, ledger, worker)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def json_documents(draw: st.DrawFn) -> bytes:
    doc = draw(json_values)
    if draw(st.booleans()):
        return json.dumps(doc).encode()
    # Unescaped, with lone surrogates written as (invalid) UTF-8 bytes.
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def job_documents(draw: st.DrawFn) -> bytes:
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["retry"] = draw(json_values.filter(lambda v: v is not False))
    if draw(st.booleans()):
        fields[draw(st.text(max_size=8).filter(lambda k: k not in JOB_KEYS))] = draw(json_values)
    cls = draw(st.sampled_from(["fault.Record", "Nope"]))
    return job(cls=cls, args=draw(st.lists(json_values, max_size=3)), **fields)


JOB_KEYS = {"class", "args", "jid", "queue", "retry", "dead", "retry_count", "retry_queue",
            "backtrace"}


def test_fuzz_random_bytes_and_documents(spawn: SpawnWorker, r: redis.Redis,
                                         ledger: Ledger) -> None:
    worker = spawn("-c", "4")
    worker.wait_registered(r)
    payload = st.binary(max_size=200) | json_documents() | job_documents()

    @settings(max_examples=200, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(payload, min_size=1, max_size=10, unique=True))
    def batch(payloads: list[bytes]) -> None:
        push_and_check(payloads, r, ledger, worker)

    batch()
