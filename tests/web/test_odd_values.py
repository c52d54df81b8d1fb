"""Every page over hostile or odd values written straight into Redis: each page renders what
it can (200, or a clean 404 for a job it cannot find) and never answers 500."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest
import redis

from web_helpers import Client

pytestmark = pytest.mark.redis

NOW = time.time()
IDENTITY = "odd-host:1:abcdef"


def job(**fields: object) -> str:
    base = {"class": "Odd", "args": [1], "jid": "0123456789abcdef01234567", "queue": "default",
            "retry": True, "created_at": NOW, "enqueued_at": NOW}
    return json.dumps({**base, **fields})


def process(r: redis.Redis, **fields: str) -> None:
    info = {"hostname": "odd-host", "pid": 1, "started_at": NOW, "concurrency": 5,
            "queues": ["default"], "identity": IDENTITY, "tag": "", "labels": []}
    values = {"info": json.dumps(info), "busy": "0", "beat": str(NOW), "quiet": "false",
              "rss": "1000", "rtt_us": "100", "concurrency": "5", **fields}
    r.sadd("processes", IDENTITY)
    r.hset(IDENTITY, mapping=values)


def work(r: redis.Redis, entry: str) -> None:
    process(r, busy="1")
    r.hset(f"{IDENTITY}:work", "tid1", entry)
    r.hset(f"{IDENTITY}:workers", "tid1", entry)


def queued(payload: str) -> Callable[[redis.Redis], None]:
    def write(r: redis.Redis) -> None:
        r.sadd("queues", "default")
        r.lpush("queue:default", payload)
    return write


def in_set(name: str, payload: str, score: float = NOW) -> Callable[[redis.Redis], None]:
    return lambda r: r.zadd(name, {payload: score})


def _big(digits: int) -> str:
    """A payload whose argument is an integer of ``digits`` digits, as Ruby writes one
    (Python refuses to write one of over 4,300 digits)."""
    return job(args=[0]).replace('"args": [0]', '"args": [' + "9" * digits + "]")


def _everywhere(r: redis.Redis, payload: str) -> None:
    """``payload`` in a queue, the three sets and a process's work."""
    queued(payload)(r)
    for name in ("retry", "schedule", "dead"):
        r.zadd(name, {payload: NOW})
    work(r, json.dumps({"queue": "default", "payload": payload, "run_at": NOW}))


BAD: dict[str, Callable[[redis.Redis], object]] = {
    "info not JSON": lambda r: process(r, info="{not json"),
    "info a list": lambda r: process(r, info="[1, 2]"),
    "busy abc": lambda r: process(r, busy="abc"),
    "pid and concurrency not numbers": lambda r: process(
        r, info=json.dumps({"pid": "x", "concurrency": "y", "started_at": 1e300}),
        concurrency="many"),
    "started_at 1e300": lambda r: process(r, info=json.dumps({"started_at": 1e300})),
    "work entry not JSON": lambda r: work(r, "{oops"),
    "work entry with odd run_at": lambda r: work(r, json.dumps(
        {"queue": "default", "payload": job(), "run_at": "soon"})),
    "work payload not a job": lambda r: work(r, json.dumps(
        {"queue": "default", "payload": "[1]", "run_at": NOW})),
    "retry score inf": in_set("retry", job(), float("inf")),
    "retry score 1e300": in_set("retry", job(), 1e300),
    "dead score -inf": in_set("dead", job(), float("-inf")),
    "created_at 1e20": queued(job(created_at=1e20, enqueued_at=1e20)),
    "created_at 10**400": queued(job(created_at=10**400, enqueued_at=10**400)),
    "enqueued_at a string": queued(job(enqueued_at="yesterday")),
    "retry entry with huge times": in_set("retry", job(failed_at=10**400, retried_at=1e20,
                                                       retry_count="x")),
    "queue key of the wrong type": lambda r: (r.sadd("queues", "default"),
                                              r.set("queue:default", "a string")),
    "schedule of the wrong type": lambda r: r.set("schedule", "x"),
    "stat:processed abc": lambda r: r.set("stat:processed", "abc"),
    "daily stat 1.5": lambda r: r.set(
        f"stat:processed:{time.strftime('%Y-%m-%d', time.gmtime())}", "1.5"),
    "metrics counter abc": lambda r: r.hset(
        f"sq:metrics:1m:{time.strftime('%Y%m%d%H%M', time.gmtime())}",
        mapping={"Odd|p": "abc", "Odd|f": "1.5", "Odd|ms": "x"}),
    "a 5,000-digit integer everywhere": lambda r: _everywhere(r, _big(5000)),
    "a 5,000-digit retry_count and created_at": lambda r: _everywhere(
        r, job(retry_count=0, created_at=0).replace('"retry_count": 0', '"retry_count": '
                                                    + "7" * 5000).replace(
            '"created_at": 0', '"created_at": ' + "8" * 5000)),
    "a 30,000-digit integer (unreadable)": lambda r: _everywhere(r, _big(30_000)),
    "5,000-digit jid, error class and message": lambda r: _everywhere(r, job(
        jid=0, error_class=1, error_message=2).replace('"jid": 0', '"jid": ' + "1" * 5000)
        .replace('"error_class": 1', '"error_class": ' + "2" * 5000)
        .replace('"error_message": 2', '"error_message": ' + "3" * 5000)),
    "payload not JSON in a queue": queued("{broken"),
    "payload a JSON list in retry": in_set("retry", "[1, 2, 3]"),
}
PAGES = ["/", "/?days=30", "/stats", "/busy", "/queues", "/queues/default",
         "/queues/default?direction=asc", "/retries", "/scheduled", "/morgue", "/metrics",
         "/metrics/Odd", "/retries?substr=Odd"]


@pytest.mark.parametrize("case", list(BAD))
def test_every_page_survives(client: Client, r: redis.Redis, case: str) -> None:
    BAD[case](r)
    failures = {}
    for path in PAGES:
        answer = client.get(path)
        if answer.status_code != 200:
            failures[path] = answer.status_code
    # A job page for a set entry whose key holds an odd score.
    for name, slug in (("retry", "retries"), ("dead", "morgue"), ("schedule", "scheduled")):
        if r.type(name) == "zset":
            for _member, score in r.zrange(name, 0, 0, withscores=True):
                answer = client.get(f"/{slug}/{score!r}-0123456789abcdef01234567")
                if answer.status_code not in (200, 404):
                    failures[f"/{slug}/<entry>"] = answer.status_code
    assert client.get("/retries/nan-x").status_code in (200, 404)
    assert not failures, failures


def test_odd_or_missing_process_times_read_as_unknown(client: Client, r: redis.Redis) -> None:
    process(r, beat="1e300", info=json.dumps({"hostname": "odd-host", "pid": 1}))
    page = client.get("/busy").text
    started = re.search(r'<td title="([^"]*)">([^<]*)</td>\s*(?:{#[^#]*#}\s*)?'
                        r'<td class="beat" title="([^"]*)">([^<]*)</td>', page)
    assert started is not None, page
    # No start time written: unknown, not 1970; a beat of 1e300: unknown, not 300 digits.
    assert started.groups() == ("-", "-", "(unreadable time)", "-")


def test_bidi_controls_are_shown_escaped(client: Client, r: redis.Redis) -> None:
    r.sadd("queues", "default")
    r.lpush("queue:default", job(args=["invoice\u202etxt.exe"]))
    page = client.get("/queues/default").text
    assert "\u202e" not in page and "invoice\\u202etxt.exe" in page


def test_a_huge_queue_name_makes_no_huge_cookie(client: Client, r: redis.Redis) -> None:
    name = "q" * 6000
    r.sadd("queues", name)
    r.lpush(f"queue:{name}", job(queue=name))
    answer = client.submit(f"/queues/{name}/delete")
    assert answer.status_code == 303
    assert len(answer.headers.get("set-cookie", "")) < 1000
    assert not r.exists(f"queue:{name}")


@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_huge_jobs_make_a_small_page_and_delete_by_their_button(
    client: Client, r: redis.Redis, direction: str,
) -> None:
    import re

    r.sadd("queues", "big")
    for i in range(3):
        r.lpush("queue:big", json.dumps({"class": "Big", "args": ["x" * 13_000_000],
                                         "jid": f"{i:024d}", "queue": "big"}))
    page = client.get(f"/queues/big?direction={direction}")
    assert page.status_code == 200 and len(page.content) < 200_000
    refs = re.findall(r'name="job" value="([^"]+)"', page.text)
    assert len(refs) == 3
    answer = client.submit("/queues/big/delete_job", {"job": refs[1]})
    assert answer.status_code == 303
    assert [json.loads(raw)["jid"] for raw in r.lrange("queue:big", 0, -1)] == [
        f"{2:024d}", f"{0:024d}"]  # the middle one, in either order, is the second row


def test_huge_names_and_tags_make_small_pages(client: Client, r: redis.Redis) -> None:
    # Class, tags and error class are names, and the list cells print them: 5 MB each here.
    huge = "N" * 5_000_000
    r.sadd("queues", "bigq")
    r.lpush("queue:bigq", *(job(**{"class": huge, "tags": [huge], "jid": f"{i:024d}"})
                            for i in range(3)))
    r.zadd("retry", {job(**{"class": huge, "tags": [huge], "error_class": huge,
                            "error_message": "m", "failed_at": NOW}): NOW})
    for path in ("/queues/bigq", "/retries"):
        page = client.get(path)
        assert page.status_code == 200 and len(page.content) < 100_000, (path, len(page.content))
    (score,) = [s for _m, s in r.zrange("retry", 0, 0, withscores=True)]
    page = client.get(f"/retries/{score!r}-0123456789abcdef01234567")
    # Each field row holds at most 100,000 characters of its value, the heading 1,000.
    assert page.status_code == 200 and len(page.content) < 500_000, len(page.content)


def test_a_jid_with_a_slash_can_be_opened_and_acted_on(client: Client, r: redis.Redis) -> None:
    import re

    r.zadd("retry", {job(jid="odd/jid"): NOW + 3600})
    page = client.get("/retries").text
    (link,) = set(re.findall(r'href="(/retries/[^"]+)"', page))
    assert client.get(link).status_code == 200
    answer = client.submit(link, {"action": "delete"})
    assert answer.status_code == 303 and r.zcard("retry") == 0


def test_static_files_are_cacheable_and_carry_no_cookie(anon: Client) -> None:
    answer = anon.get("/static/app.css")
    assert answer.status_code == 200
    assert "set-cookie" not in answer.headers
    assert "no-store" not in answer.headers.get("cache-control", "")


def test_metrics_of_many_classes_are_paged(client: Client, r: redis.Redis) -> None:
    stamp = time.strftime("%Y%m%d%H%M", time.gmtime())
    r.hset(f"sq:metrics:1m:{stamp}", mapping={f"Class{i:05d}|p": 1 for i in range(3000)})
    first = client.get("/metrics")
    assert first.status_code == 200 and first.text.count("/metrics/Class") == 25
    assert "Page 1 of 120" in first.text
    last = client.get("/metrics?page=120").text
    assert last.count("/metrics/Class") == 25


@pytest.mark.parametrize("name", ["what?now", "hash#tag", "a/b", "100%"])
def test_queue_names_with_url_characters_link_to_their_page(
    client: Client, r: redis.Redis, name: str,
) -> None:
    import re

    r.sadd("queues", name)
    r.lpush(f"queue:{name}", job(queue=name, jid="c" * 24))
    links = re.findall(r'href="(/queues/[^"]+)"', client.get("/queues").text)
    (link,) = [link for link in links if "c" * 24 not in link]
    page = client.get(link)
    assert page.status_code == 200 and "c" * 24 in page.text
