"""/prometheus: the whole Redis's figures in Prometheus's text format, behind the login or
a scrape token; parsed back with prometheus-client's own parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from sidequest import keys, metrics
from sidequest.errors import ConfigError
from sidequest.web import create_app, wsgi_app
from sidequest.web.security import SCRAPE_TOKEN_ENV
from web_helpers import PASSWORD, Client, enqueue, failed, job

TOKEN = "scrape-token-" + "y" * 20


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_queue_sets_totals_and_classes(client: Client, r: redis.Redis) -> None:
    old = json.loads(job("a" * 24))
    old["enqueued_at"] = time.time() - 30
    enqueue(r, "default", json.dumps(old), job("b" * 24))
    enqueue(r, "mailers", job("c" * 24, queue="mailers"))
    r.zadd("retry", {failed("d" * 24): time.time() + 60})
    r.sadd("sq:processes", "gone:9:aaaa")  # a dead Sidequest process (no lease) with a job
    r.lpush("sq:inprogress:gone:9:aaaa", job("e" * 24))
    r.sadd("processes", "gone:9:aaaa")  # still listed, as until the reaper runs
    r.hset("gone:9:aaaa", mapping={"info": "{}", "busy": 1})
    r.set("stat:processed", 12)
    r.set(keys.STAT_OVERLIMIT, 3)
    recorder = metrics.Recorder()
    recorder.record("app.jobs.Report", 40.0, failed=False)  # bucket <45 ms
    recorder.record("app.jobs.Report", 0.0, failed=True)
    recorder.flush()
    page = client.get("/prometheus")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    found = samples(page.text)
    assert found[("sidequest_queue_size", (("queue", "default"),))] == 2
    assert found[("sidequest_queue_size", (("queue", "mailers"),))] == 1
    assert found[("sidequest_queue_latency_seconds", (("queue", "default"),))] >= 29
    assert found[("sidequest_retries", ())] == 1
    assert found[("sidequest_awaiting_recovery", ())] == 1
    # Its job waits to run again: not running, and the process is not alive.
    assert found[("sidequest_busy", ())] == 0 and found[("sidequest_processes", ())] == 0
    assert found[("sidequest_processed_total", ())] == 12
    assert found[("sidequest_overlimit_total", ())] == 3
    report = (("class", "app.jobs.Report"),)
    assert found[("sidequest_job_runs_last_hour", report)] == 2
    assert found[("sidequest_job_failures_last_hour", report)] == 1
    assert found[("sidequest_job_duration_seconds_bucket", (*report, ("le", "0.03")))] == 0
    assert found[("sidequest_job_duration_seconds_bucket", (*report, ("le", "0.045")))] == 1
    assert found[("sidequest_job_duration_seconds_bucket", (*report, ("le", "+Inf")))] == 1


def test_past_the_queue_cap_the_largest_queues_are_reported(
        client: Client, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    from sidequest.contrib import prometheus

    monkeypatch.setattr(prometheus, "MAX_QUEUES", 3)
    for i in range(5):
        enqueue(r, f"q{i}", job(f"{i:024x}", queue=f"q{i}"))
    enqueue(r, "zz-busy", *(job(f"{n:024x}", queue="zz-busy") for n in range(10, 14)))
    enqueue(r, "q4", job("e" * 24, queue="q4"))
    found = samples(client.get("/prometheus").text)
    sizes = {dict(labels)["queue"]: value for (name, labels), value in found.items()
             if name == "sidequest_queue_size"}
    # Named last, the busiest came first; then q4 (2 jobs), then the first of the equals.
    assert sizes == {"zz-busy": 4, "q4": 2, "q0": 1}, sizes
    assert found[("sidequest_queues", ())] == 6
    assert ("sidequest_queue_latency_seconds", (("queue", "zz-busy"),)) in found


def test_a_queue_whose_name_is_not_utf8_is_measured_by_its_own_bytes(
        client: Client, r: redis.Redis) -> None:
    r.sadd("queues", b"q\xff")  # written by another program
    r.lpush(b"queue:q\xff", job("f" * 24), job("g" * 24))
    found = samples(client.get("/prometheus").text)
    assert found[("sidequest_queue_size", (("queue", "q\\xff"),))] == 2


def test_a_scraper_needs_the_token(anon: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    assert anon.get("/prometheus").status_code == 401
    monkeypatch.setenv(SCRAPE_TOKEN_ENV, TOKEN)
    # The token is read (and checked) when the app is made: the running one still has none.
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert anon.get("/prometheus", headers=bearer).status_code == 401
    with Client(create_app(password=PASSWORD)) as scraper:
        wrong = scraper.get("/prometheus", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
        answer = scraper.get("/prometheus", headers=bearer)
        assert answer.status_code == 200 and "sidequest_busy" in answer.text
        # The scheme in any case, as HTTP has it; the token itself exactly.
        lower = scraper.get("/prometheus", headers={"Authorization": f"bearer {TOKEN}"})
        assert lower.status_code == 200
        other = scraper.get("/prometheus", headers={"Authorization": f"Basic {TOKEN}"})
        upper = scraper.get("/prometheus", headers={"Authorization": f"Bearer {TOKEN.upper()}"})
        assert other.status_code == upper.status_code == 401
        # The token opens this page only.
        assert scraper.get("/queues", headers=bearer).status_code == 401


def test_the_token_can_be_passed_to_create_app(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that keeps its secrets elsewhere than the environment passes the token; the
    argument wins over the variable, and is checked as strictly."""
    monkeypatch.setenv(SCRAPE_TOKEN_ENV, "from-the-environment-" + "e" * 16)
    with Client(create_app(password=PASSWORD, prometheus_token=TOKEN)) as scraper:
        assert scraper.get("/prometheus", headers={
            "Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert scraper.get("/prometheus", headers={
            "Authorization": f"Bearer {os.environ[SCRAPE_TOKEN_ENV]}"}).status_code == 401
    with pytest.raises(ConfigError, match=r"prometheus_token or \$SIDEQUEST_PROMETHEUS_TOKEN"
                       r"\) is 5 characters long"):
        wsgi_app(password=PASSWORD, prometheus_token="short")


#: Tokens a scraper could never use: too short (it used to be ignored without a word, and
#: every scrape got 401), or with what an Authorization header does not carry as it is.
UNUSABLE = [
    ("short", r"is 5 characters long; use at least 16"),
    ("x" * 15, r"is 15 characters long; use at least 16"),
    (TOKEN + "\n", rf"control or non-ASCII character at position {len(TOKEN) + 1}"),
    (" " + TOKEN, r"a space, control or non-ASCII character at position 1 "),
    ("scrape token " + "y" * 20, r"a space, .* at position 7 "),
    ("caf\u00e9-" + "y" * 20, r"non-ASCII character at position 4 "),
]


@pytest.mark.parametrize(("token", "complaint"), UNUSABLE)
def test_an_unusable_token_is_refused(token: str, complaint: str, redis_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCRAPE_TOKEN_ENV, token)
    for make in (create_app, wsgi_app):  # mounted in an ASGI app, or in a WSGI one
        with pytest.raises(ConfigError, match=rf"SIDEQUEST_PROMETHEUS_TOKEN.*{complaint}"
                           r".*token_urlsafe"):
            make(password=PASSWORD)
        with pytest.raises(ConfigError, match="SIDEQUEST_PROMETHEUS_TOKEN"):
            make(insecure=True)  # whatever guards the pages


def test_the_shortest_token_is_used_and_an_empty_one_is_none(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCRAPE_TOKEN_ENV, "")
    assert create_app(password=PASSWORD).state.sidequest.scrape_token is None
    token = "!~" + "z" * 14  # 16 characters, the ends of printable ASCII
    monkeypatch.setenv(SCRAPE_TOKEN_ENV, token)
    app = create_app(password=PASSWORD)
    assert token not in repr(app.state.sidequest)
    with Client(app) as anon:
        answer = anon.get("/prometheus", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


def test_sidequest_web_refuses_a_short_token(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDEQUEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "sidequest", "web", "--port", "1"],
        env={**env, "SIDEQUEST_REDIS_URL": redis_url, SCRAPE_TOKEN_ENV: "short"},
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert SCRAPE_TOKEN_ENV in result.stderr and "at least 16" in result.stderr
    assert "secrets.token_urlsafe(24)" in result.stderr
    assert "Traceback" not in result.stderr and not result.stdout


def test_an_apps_own_registry_survives_a_redis_outage(redis_url: str, r: redis.Redis) -> None:
    """Registered in an app's registry, the collector neither fails the app's start (it was
    collected at registration) nor its scrapes while Redis is down."""
    import socket

    from prometheus_client import CollectorRegistry, Counter, generate_latest

    import sidequest
    import sidequest.connection
    from sidequest.contrib.prometheus import SidequestCollector

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    registry = CollectorRegistry(auto_describe=True)  # as prometheus_client.REGISTRY
    Counter("app_requests", "The app's own figure.", registry=registry).inc()
    r.set("stat:processed", 5)
    try:
        sidequest.connection.reset()
        sidequest.configure(redis_url=dead)
        registry.register(SidequestCollector())
        down = samples(generate_latest(registry).decode())
    finally:
        sidequest.connection.reset()
        sidequest.configure(redis_url=redis_url)
    assert down[("sidequest_redis_up", ())] == 0
    assert down[("app_requests_total", ())] == 1
    assert ("sidequest_processed_total", ()) not in down
    up = samples(generate_latest(registry).decode())
    assert up[("sidequest_redis_up", ())] == 1 and up[("sidequest_processed_total", ())] == 5
    # Its names are declared: a second registration is refused (each figure twice would
    # fail the scrape), and a scrape filtered by name finds them.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(SidequestCollector())
    only = samples(generate_latest(registry.restricted_registry(["sidequest_processed_total"]))
                   .decode())
    assert only == {("sidequest_processed_total", ()): 5}


def test_the_duration_sum_covers_the_runs_its_buckets_count(
        client: Client, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs 63 minutes before a "now" 5 minutes into its 10-minute slot: in the seven
    # histogram slots (the last 65 minutes then), out of the last 60. Before, the buckets
    # counted them and the sum, read from the 60 minutes, did not.
    from types import SimpleNamespace

    from sidequest.api import metrics as api_metrics

    now = (time.time() // 600) * 600 + 300
    monkeypatch.setattr(api_metrics, "time", SimpleNamespace(time=lambda: now))
    then = now - 63 * 60
    recorder = metrics.Recorder(clock=lambda: then)
    for _ in range(4):
        recorder.record("app.jobs.Old", 50.0, failed=False)
    recorder.flush()
    found = samples(client.get("/prometheus").text)
    old = (("class", "app.jobs.Old"),)
    assert ("sidequest_job_runs_last_hour", old) not in found  # outside the hour
    assert found[("sidequest_job_duration_seconds_gcount", old)] == 4
    assert found[("sidequest_job_duration_seconds_gsum", old)] == pytest.approx(0.2)
