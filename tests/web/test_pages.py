"""Every dashboard page and action against real Redis data, and hostile job data printed
inert everywhere (reliability.md B9)."""

from __future__ import annotations

import html
import json
import re
import time
from typing import Any

import pytest
import redis

import sidequest
from sidequest.api import Queue
from sidequest.metrics import Recorder
from web_helpers import (
    HOSTILE,
    RAW_FORMS,
    Client,
    enqueue,
    failed,
    flash,
    job,
    process,
    row_key,
)

pytestmark = pytest.mark.redis

A, B, C = "a" * 24, "b" * 24, "c" * 24


def test_dashboard_shows_totals_history_and_redis(client: Client, r: redis.Redis) -> None:
    r.set("stat:processed", 1234567)
    r.set("stat:failed", 89)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    r.set(f"stat:processed:{today}", 40)
    enqueue(r, "default", job(A), job(B))
    r.zadd("retry", {failed(C): time.time()})
    page = client.get("/?days=7").text
    assert 'data-stat="processed">1,234,567<' in page
    assert 'data-stat="failed">89<' in page and 'data-stat="enqueued">2<' in page
    assert 'data-stat="retries">1<' in page
    assert "Processed: 40" in page  # the history legend sums the 7 days
    assert len(re.findall(r'class="line processed" points="([^"]+)"', page)[0].split()) == 7
    info = r.info("server")
    assert f"<dd>{info['redis_version']}</dd>" in page
    assert 'data-url="/stats"' in page and 'data-interval="5"' in page


def test_the_dashboard_says_what_in_redis_puts_jobs_at_risk(client: Client,
                                                           r: redis.Redis) -> None:
    """It showed memory used, not of what: a Redis about to refuse pushes, or one that
    deletes queues when full, looked like any other."""
    page = client.get("/").text
    assert "(no maxmemory)" in page and "noeviction" in page and 'data-risk="policy"' not in page
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", int(used / 0.95))
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        page = client.get("/").text
    finally:
        r.config_set("maxmemory", 0)
        r.config_set("maxmemory-policy", "noeviction")
    assert re.search(r'data-risk="memory">\d+% of maxmemory: once full, Redis refuses pushes',
                     page), page
    assert 'data-risk="policy">deletes keys when memory runs out' in page
    assert "allkeys-lru" in page and " of " in page
    r.config_set("maxmemory-policy", "volatile-lru")  # keys with a TTL only: not the queues
    try:
        page = client.get("/").text
    finally:
        r.config_set("maxmemory-policy", "noeviction")
    assert 'data-risk="policy">deletes keys that expire when memory runs out, leases' in page


def test_stats_json_for_the_real_time_graph(client: Client, r: redis.Redis) -> None:
    r.set("stat:processed", 10)
    enqueue(r, "default", job(A))
    body = client.get("/stats").json()
    assert body["sidequest"]["processed"] == 10 and body["sidequest"]["enqueued"] == 1
    assert abs(body["server_utc_time"] - time.time()) < 5
    r.set("stat:processed", 11)
    assert client.get("/stats").json()["sidequest"]["processed"] in (10, 11)  # 1 s cache

    def fresh() -> int:
        return int(client.get("/stats").json()["sidequest"]["processed"])

    deadline = time.monotonic() + 3
    while fresh() != 11:
        assert time.monotonic() < deadline, "the cached poll never caught up"
        time.sleep(0.1)


def test_the_first_poll_after_a_page_load_never_shows_older_numbers(
        client: Client, r: redis.Redis) -> None:
    r.set("stat:processed", 10)
    assert client.get("/stats").json()["sidequest"]["processed"] == 10  # now cached
    r.set("stat:processed", 11)  # an action taken within the cache's second
    assert 'data-stat="processed">11<' in client.get("/").text
    # The page's own first poll: 11, as the page showed, not the cached 10.
    assert client.get("/stats").json()["sidequest"]["processed"] == 11


def test_busy_lists_processes_and_running_jobs(client: Client, r: redis.Redis) -> None:
    process(r, "worker-1:4242:aaaaaaaaaaaa", tag="shop", busy=1,
            work={"t1": job(A, klass="app.jobs.Export", args=[99])})
    page = client.get("/busy").text
    assert "worker-1:4242" in page and ">shop<" in page and "50 MB" in page
    assert "1 / 5" in page and "running" in page
    assert "app.jobs.Export" in page and A in page and "[99]" in page and ">t1<" in page
    # When it last beat, as `sidequest status` shows: a stale beat is a process in trouble.
    r.hset("worker-1:4242:aaaaaaaaaaaa", "beat", time.time() - 125)
    assert re.search(r'<td class="beat" title="[^"]+">2 min ago</td>', client.get("/busy").text)


def test_the_busy_heading_counts_quiet_processes_apart(client: Client, r: redis.Redis) -> None:
    process(r, "w1:1:aaaaaaaaaaaa", busy=1)
    heading = re.compile(r"<h2>Processes <span class=\"muted\">([^<]+)</span>")
    assert heading.search(client.get("/busy").text)[1] == "1 process, 1 of 5 threads busy"
    process(r, "w2:2:bbbbbbbbbbbb")
    r.hset("w2:2:bbbbbbbbbbbb", "quiet", "true")
    assert heading.search(client.get("/busy").text)[1] == (
        "2 processes (1 quiet), 1 of 10 threads busy")


def test_cancel_a_running_job_from_the_busy_page(client: Client, r: redis.Redis) -> None:
    process(r, "worker-1:4242:aaaaaaaaaaaa", busy=1, work={"t1": job(A, args=[1])})
    r.sadd("sq:processes", "worker-1:4242:aaaaaaaaaaaa")  # a Sidequest process, alive:
    r.set("sq:lease:worker-1:4242:aaaaaaaaaaaa", "1", px=60_000)  # one without is not shown
    page = client.get("/busy").text
    assert 'name="action" value="cancel"' in page and f'name="jid" value="{A}"' in page
    answer = client.submit("/busy", {"action": "cancel", "jid": A})
    assert answer.status_code == 303
    assert r.zscore("sq:cancelled", A) is not None
    page = client.get("/busy").text
    assert f"Cancelling {A}" in flash(page)
    # Its row says it is being cancelled, instead of offering Cancel again.
    assert f'name="jid" value="{A}"' not in page and ">cancelling</span>" in page
    assert client.submit("/busy", {"action": "cancel", "jid": ""}).status_code == 400


def test_a_job_running_in_ruby_sidekiq_offers_no_cancel(client: Client, r: redis.Redis) -> None:
    # Ruby Sidekiq cannot cancel a running job: the button would promise what cannot happen.
    process(r, "ruby-1:77:cccccccccccc", busy=1, work={"t1": job(A, args=[1])})
    page = client.get("/busy").text
    assert A in page and 'name="action" value="cancel"' not in page
    assert "cannot cancel a running job" in page


def test_quiet_and_stop_one_process_or_all(client: Client, r: redis.Redis) -> None:
    process(r, "w1:1:aaaaaaaaaaaa")
    process(r, "w2:2:bbbbbbbbbbbb")
    answer = client.submit("/busy", {"action": "quiet", "identity": "w1:1:aaaaaaaaaaaa"})
    assert answer.status_code == 303 and answer.headers["location"] == "/busy"
    assert r.lrange("w1:1:aaaaaaaaaaaa-signals", 0, -1) == ["TSTP"]
    assert r.llen("w2:2:bbbbbbbbbbbb-signals") == 0
    assert "Asked the process to quiet (1); a process does it at its next" in flash(
        client.get("/busy").text)
    client.submit("/busy", {"action": "stop"})
    assert r.lrange("w1:1:aaaaaaaaaaaa-signals", 0, -1) == ["TERM", "TSTP"]
    assert r.lrange("w2:2:bbbbbbbbbbbb-signals", 0, -1) == ["TERM"]
    assert client.submit("/busy", {"action": "explode"}).status_code == 400
    client.submit("/busy", {"action": "stop", "identity": "gone:1:x"})
    assert "No such process" in flash(client.get("/busy").text)


def test_queues_and_a_queue_page_both_ways(client: Client, r: redis.Redis) -> None:
    enqueue(r, "default", *(job(f"{i:024x}", args=[i]) for i in range(60)))
    enqueue(r, "low", job(A))
    page = client.get("/queues").text
    assert 'href="/queues/default"' in page and ">60<" in page and 'href="/queues/low"' in page
    newest = client.get("/queues/default?count=10").text
    assert "[59]" in newest and "[50]" in newest and "[49]" not in newest
    assert "Page 1 of 6" in newest
    oldest = client.get("/queues/default?count=10&direction=asc&page=2").text
    assert "[10]" in oldest and "[19]" in oldest and "[9]" not in oldest and "[20]" not in oldest
    past_the_end = client.get("/queues/default?count=10&page=1000").text
    assert "Page 6 of 6" in past_the_end and "[0]" in past_the_end
    # A latency reads as a person would say it, not "403.50 s".
    enqueue(r, "stale", job(B, queue="stale", enqueued_at=time.time() - 403.5))
    assert re.search(r'title="403\.\d{3} s">6 min 43 s<', client.get("/queues").text)


def test_delete_one_job_and_a_whole_queue(client: Client, r: redis.Redis) -> None:
    enqueue(r, "default", job(A), job(B))
    page = client.get("/queues/default").text
    refs = re.findall(r'name="job" value="([^"]+)"', page)
    assert len(refs) == 2
    # A short reference (where the row was, and a digest of the entry), not the payload.
    assert all(len(ref) < 60 for ref in refs)
    shown_first = json.loads(r.lindex("queue:default", 0))["jid"]  # newest first on the page
    answer = client.submit("/queues/default/delete_job", {"job": html.unescape(refs[0])})
    assert answer.headers["location"] == "/queues/default"
    assert [json.loads(raw)["jid"] for raw in r.lrange("queue:default", 0, -1)] == \
        [jid for jid in (A, B) if jid != shown_first]
    again = client.submit("/queues/default/delete_job", {"job": html.unescape(refs[0])})
    assert again.status_code == 303 and "no longer" in flash(client.get("/queues").text)
    assert client.submit("/queues/default/delete_job", {"job": "%%%"}).status_code == 400
    client.submit("/queues/default/delete")
    assert not r.exists("queue:default") and not r.sismember("queues", "default")


def test_a_job_that_is_not_utf8_can_be_deleted(client: Client, r: redis.Redis) -> None:
    r.sadd("queues", "bad")
    r.lpush("queue:bad", b'{"class":"X","args":["\xff\xfe"],"jid":"1","queue":"bad"}')
    page = client.get("/queues/bad").text
    ref = re.findall(r'name="job" value="([^"]+)"', page)[0]
    client.submit("/queues/bad/delete_job", {"job": html.unescape(ref)})
    assert Queue("bad").size == 0


@pytest.fixture
def retries(r: redis.Redis) -> dict[str, str]:
    now = time.time()
    r.zadd("retry", {failed(A): now + 90, failed(B): now + 150, failed(C): now + 210})
    return {jid: row_key(r, "retry", jid) for jid in (A, B, C)}


def test_retries_list_detail_and_filter(client: Client, r: redis.Redis,
                                        retries: dict[str, str]) -> None:
    page = client.get("/retries").text
    assert page.count('name="key"') == 3 and "ReportError" in page and "in 1 min" in page
    detail = client.get(f"/retries/{retries[A]}").text
    assert "app/jobs.py:10:in `perform&#39;" in detail  # the decoded backtrace, escaped
    assert "the report failed" in detail and "retry_count" in detail and A in detail
    assert client.get("/retries/1.0-nope").status_code == 404
    assert client.get("/retries/garbage").status_code == 404
    r.zadd("retry", {failed("d" * 24, error_message="needle in here"): time.time()})
    found = client.get("/retries?substr=needle").text
    assert found.count('name="key"') == 1 and "d" * 24 in found
    assert "No job matches" in client.get("/retries?substr=no-such-thing").text


def test_an_unknown_address_is_a_page_with_the_tabs(client: Client) -> None:
    # Before: a bare "Not Found" with no way on.
    answer = client.get("/retrys?page=2")
    assert answer.status_code == 404
    assert "Page not found" in answer.text and "<code>/retrys</code>" in answer.text
    assert 'href="/retries"' in answer.text  # the tabs
    missing = client.get("/static/nothing.css")  # no page around a missing file
    assert missing.status_code == 404 and missing.text == "Not Found"


def test_retry_delete_and_kill_rows(client: Client, r: redis.Redis,
                                    retries: dict[str, str]) -> None:
    answer = client.submit(f"/retries/{retries[A]}", {"action": "retry"})
    assert answer.headers["location"] == "/retries"
    queued = json.loads(r.lindex("queue:default", 0) or "{}")
    assert queued["jid"] == A and queued["retry_count"] == 1
    client.submit(f"/retries/{retries[B]}", {"action": "kill"})
    assert row_key(r, "dead", B)
    client.submit("/retries", {"action": "delete", "key": [retries[C], retries[A]]})
    assert r.zcard("retry") == 0
    assert "Deleted: 1 of 2" in flash(client.get("/retries").text)
    assert client.submit(f"/retries/{retries[A]}", {"action": "add_to_queue"}).status_code == 400


def test_whole_set_actions(client: Client, r: redis.Redis, retries: dict[str, str]) -> None:
    client.submit("/retries/all/kill")
    assert r.zcard("retry") == 0 and r.zcard("dead") == 3
    client.submit("/morgue/all/retry")
    assert r.zcard("dead") == 0 and r.llen("queue:default") == 3
    r.zadd("schedule", {job(f"{i:024x}"): time.time() + 3600 for i in range(5)})
    client.submit("/scheduled/all/add_to_queue")
    assert r.zcard("schedule") == 0 and r.llen("queue:default") == 8
    r.zadd("retry", {failed(A): 1})
    client.submit("/retries/all/retry")
    assert r.zcard("retry") == 0 and r.llen("queue:default") == 9
    r.zadd("dead", {failed(A): 1, failed(B): 2})
    client.submit("/morgue/all/delete")
    assert r.zcard("dead") == 0
    assert "Deleted: 2" in flash(client.get("/morgue").text)
    assert client.submit("/morgue/all/kill").status_code == 400
    assert client.submit("/scheduled/all/retry").status_code == 400


def test_scheduled_and_dead_pages(client: Client, r: redis.Redis) -> None:
    r.zadd("schedule", {job(A): time.time() + 7300})
    r.zadd("dead", {failed(B): time.time() - 60, failed(C): time.time() - 7200})
    scheduled = client.get("/scheduled").text
    assert "Add to queue" in scheduled and "in 2 h" in scheduled and A in scheduled
    key = row_key(r, "schedule", A)
    client.submit(f"/scheduled/{key}", {"action": "add_to_queue"})
    assert json.loads(r.lindex("queue:default", 0) or "{}")["jid"] == A
    dead = client.get("/morgue").text
    assert dead.index(B) < dead.index(C)  # newest first
    assert "Kill" not in re.sub(r"<title>.*?</title>", "", dead)  # no kill in the morgue
    client.submit(f"/morgue/{row_key(r, 'dead', C)}", {"action": "retry"})
    assert r.zcard("dead") == 1


def test_sets_paginate(client: Client, r: redis.Redis) -> None:
    r.zadd("retry", {failed(f"{i:024x}"): 1000 + i for i in range(30)})
    first = client.get("/retries?count=10").text
    assert "Page 1 of 3" in first and f"{0:024x}" in first and f"{10:024x}" not in first
    last = client.get("/retries?count=10&page=3").text
    assert f"{29:024x}" in last and f"{19:024x}" not in last


def test_unreadable_payloads_show_and_can_be_deleted(client: Client, r: redis.Redis) -> None:
    r.zadd("dead", {"{not json": 5.0})
    page = client.get("/morgue").text
    assert "(unreadable payload)" in page and "{not json" in page
    client.submit("/morgue", {"action": "delete", "key": ["5.0-"]})
    assert r.zcard("dead") == 0


def test_metrics_pages(client: Client, r: redis.Redis) -> None:
    recorder = Recorder()
    for ms in (10.0, 40.0, 40.0, 2000.0):
        recorder.record("app.jobs.Report", ms, failed=False)
    recorder.record("app.jobs.Report", 0.0, failed=True)
    recorder.record("app.jobs.Other", 5.0, failed=False)
    for _ in range(2):
        recorder.record("app.jobs.Slow", 65036.0, failed=False)
    recorder.flush()
    page = client.get("/metrics").text
    rows = re.findall(r"<tr>\s*<td[^>]*><a href=\"/metrics/([^\"?]+)\?period=1h\">", page)
    assert rows == ["app.jobs.Slow", "app.jobs.Report", "app.jobs.Other"]  # most time first
    assert ">5<" in page and ">1<" in page and "2.09 s" in page and "522.5 ms" in page
    # A total and an average in one unit, not "130.07 s" beside "65036.0 ms".
    assert "2 min 10 s" in page and "1 min 5 s" in page and "65036" not in page
    assert client.get("/metrics?substr=other").text.count("app.jobs.Report") == 0
    detail = client.get("/metrics/app.jobs.Report?period=24h").text
    assert "<dd>5</dd>" in detail and "<dd>1</dd>" in detail
    bars = re.findall(r"<title>([^<]+): ([\d,]+)</title>", detail)
    assert ("&lt;20ms", "1") in bars and ("&lt;45ms", "2") in bars and ("&lt;2.5s", "1") in bars
    assert client.get("/metrics/app.jobs.Nothing").status_code == 200
    recorder.close()


HOSTILE_PAGES = ("/", "/busy", "/queues", "/queues/{q}", "/retries", "/retries/{retry}",
                 "/scheduled", "/morgue", "/morgue/{dead}", "/metrics", "/metrics/{klass}",
                 "/retries?substr=script")


def test_hostile_strings_are_printed_inert_everywhere(client: Client, r: redis.Redis) -> None:
    evil = dict(klass=HOSTILE, queue=HOSTILE, args=[HOSTILE, {HOSTILE: HOSTILE}],
                tags=[HOSTILE], error_class=HOSTILE, error_message=HOSTILE)
    enqueue(r, HOSTILE, job(A, **{k: v for k, v in evil.items() if not k.startswith("error")}))
    r.zadd("retry", {failed(B, **evil): time.time() + 60})
    r.zadd("dead", {failed(C, **evil): time.time()})
    r.zadd("schedule", {job("e" * 24, klass=HOSTILE, args=[HOSTILE]): time.time() + 60})
    process(r, "evil-host:66:abcdefabcdef", tag=HOSTILE, busy=1, hostname=HOSTILE,
            labels=[HOSTILE], queues=[HOSTILE], work={HOSTILE: job(A, klass=HOSTILE)})
    recorder = Recorder()
    recorder.record(HOSTILE, 12.0, failed=False)
    recorder.flush()
    values = {"q": _seg(HOSTILE), "retry": row_key(r, "retry", B), "dead": row_key(r, "dead", C),
              "klass": _seg(HOSTILE)}
    for template in HOSTILE_PAGES:
        path = template.format(**values)
        answer = client.get(path)
        assert answer.status_code == 200, path
        for raw in RAW_FORMS:
            assert raw not in answer.text, f"{raw!r} printed raw on {path}"
        if "{" in template or path in ("/busy", "/queues", "/retries", "/morgue", "/metrics"):
            assert "&lt;script&gt;alert(1)" in answer.text, f"hostile text missing on {path}"
    # Acting on the hostile queue works (its name is quoted as one path segment).
    client.submit(f"/queues/{_seg(HOSTILE)}/delete")
    assert not r.exists(f"queue:{HOSTILE}")


def _seg(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def test_flash_message_is_shown_once(client: Client, r: redis.Redis) -> None:
    enqueue(r, "default", job(A))
    client.submit("/queues/default/delete")
    assert "Deleted the queue default and its 1 job." in flash(client.get("/queues").text)
    assert flash(client.get("/queues").text) == ""


def test_the_redis_password_never_appears(app: Any, r: redis.Redis, redis_url: str) -> None:
    secret = "s3cr3t-redis-pw"
    url = redis_url.replace("redis://", f"redis://:{secret}@")
    r.config_set("requirepass", secret)  # existing connections stay authenticated
    try:
        sidequest.configure(redis_url=url)
        enqueue(r, "default", job(A))
        process(r, "w1:1:aaaaaaaaaaaa")
        with Client(app) as client:
            client.login()
            for path in ("/", "/stats", "/busy", "/queues", "/queues/default", "/retries",
                         "/metrics"):
                answer = client.get(path)
                assert answer.status_code == 200, path
                assert secret not in answer.text, path
    finally:
        r.config_set("requirepass", "")


def test_the_busy_page_says_which_jobs_await_recovery(client: Client, r: redis.Redis) -> None:
    def said() -> str:
        return " ".join(client.get("/busy").text.split())

    r.sadd("sq:processes", "gone:9:dddddddddddd")  # a Sidequest process, its lease expired
    r.lpush("sq:inprogress:gone:9:dddddddddddd", job(A))
    assert ("1 job of 1 Sidequest process that stopped (<code>gone:9:dddddddddddd</code>) waits"
            " in Redis to go back to its queue: no Sidequest worker is running to put it back"
            in said())
    r.sadd("sq:processes", "live:8:eeeeeeeeeeee")
    r.set("sq:lease:live:8:eeeeeeeeeeee", "1", px=60_000)
    process(r, "live:8:eeeeeeeeeeee")
    assert "a running Sidequest worker puts it back within half a minute" in said()
