"""/prometheus: the whole Redis's figures in Prometheus's text format, behind the login or
a scrape token; parsed back with prometheus-client's own parser."""

from __future__ import annotations

import json
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from sidequest import keys, metrics
from sidequest.web.security import SCRAPE_TOKEN_ENV
from web_helpers import Client, enqueue, failed, job

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
    assert found[("sidequest_processed_total", ())] == 12
    assert found[("sidequest_overlimit_total", ())] == 3
    report = (("class", "app.jobs.Report"),)
    assert found[("sidequest_job_runs_last_hour", report)] == 2
    assert found[("sidequest_job_failures_last_hour", report)] == 1
    assert found[("sidequest_job_duration_seconds_bucket", (*report, ("le", "0.03")))] == 0
    assert found[("sidequest_job_duration_seconds_bucket", (*report, ("le", "0.045")))] == 1
    assert found[("sidequest_job_duration_seconds_bucket", (*report, ("le", "+Inf")))] == 1


def test_a_scraper_needs_the_token(anon: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    assert anon.get("/prometheus").status_code == 401
    monkeypatch.setenv(SCRAPE_TOKEN_ENV, TOKEN)
    assert anon.get("/prometheus", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = anon.get("/prometheus", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and "sidequest_busy" in answer.text
    # The token opens this page only.
    assert anon.get("/queues", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
