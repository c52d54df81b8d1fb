"""Our dashboard over data that Ruby Sidekiq 6.4 wrote: a busy ``sidekiq`` process, a failed
Ruby job in ``retry`` (its backtrace in 6.4's Base64 with line breaks), a dead one, a
scheduled one and a queued one. Every page answers and shows the Ruby jobs, and "Retry now"
from our dashboard hands the job back to the Ruby worker, which runs it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from helpers import wait_for
from sidequest.api import DeadSet, JobSet, ProcessSet, RetrySet
from sidequest.web import create_app
from web_helpers import PASSWORD, Client, flash

PUSH_BLOCK = 'emit(Sidekiq::Client.push("class" => "InteropBlock", "args" => ["ruby busy"]))'

# Client.push with a class name only: the options that jobs.rb gives these classes are passed
# in the item, as Sidekiq merges them at push time.
PUSH_JOBS = """
later = Time.now.to_f + 3600
emit(
  "retry" => Sidekiq::Client.push("class" => "InteropParked", "args" => INPUT["retry"],
                                  "backtrace" => true),
  "dead" => Sidekiq::Client.push("class" => "InteropDoomed", "args" => ["ruby dead"],
                                 "retry" => 0, "backtrace" => true),
  "scheduled" => Sidekiq::Client.push("class" => "InteropRecord", "args" => ["ruby later"],
                                      "at" => later),
  "queued" => Sidekiq::Client.push("class" => "InteropRecord", "args" => ["ruby queued"],
                                   "queue" => "waiting"),
)
"""


@pytest.fixture
def client(redis_url: str) -> Iterator[Client]:
    app: Starlette = create_app(password=PASSWORD, secret_key="interop-secret-" + "x" * 32)
    with Client(app) as logged_in:
        assert logged_in.login().status_code == 303
        yield logged_in


def _entry(jobset: JobSet, jid: str) -> Any:
    entry = wait_for(lambda: jobset.find_job(jid), what=f"{jid} in `{jobset.name}`")
    assert "\n" in entry.item["error_backtrace"]  # 6.4 writes Base64 with line breaks
    return entry


def test_dashboard_pages_and_retry_now_over_ruby_written_data(
    sidekiq_process: Any, run_ruby: Callable[..., Any], client: Client, ledger: Any
) -> None:
    identity = sidekiq_process.identity
    blocked = run_ruby(PUSH_BLOCK)
    # Sidekiq 6.4 beats every 5 s: wait for the beat that shows the job running.
    wait_for(lambda: [p for p in ProcessSet() if p.busy >= 1], what="a busy Ruby process")
    retry_args = ["ruby retry", {"n": 2**64}]
    jids = run_ruby(PUSH_JOBS, {"retry": retry_args})
    # Ruby fails both at once; the retry is due in an hour, long after this test acts.
    retry, dead = _entry(RetrySet(), jids["retry"]), _entry(DeadSet(), jids["dead"])
    # Sidekiq's own <score>-<jid> ids open the detail pages; the list pages link each row by
    # its exact reference (<score>~<digest>-<jid>).
    retry_id, dead_id = retry.id, dead.id
    retry_error = f"first attempt of {jids['retry']} fails on purpose"
    expect = {
        "/busy": [identity, f":{sidekiq_process.pid}", "InteropBlock", blocked, "ruby busy"],
        "/queues": ["waiting", "default"],
        "/queues/waiting": ["InteropRecord", jids["queued"], "ruby queued"],
        "/retries": ["InteropParked", "InteropError", retry_error],
        f"/retries/{retry_id}": ["InteropParked", jids["retry"], "InteropError", retry_error,
                                 "jobs.rb", "Backtrace", "18446744073709551616"],
        "/scheduled": ["InteropRecord", "ruby later"],
        "/morgue": ["InteropDoomed", "InteropError", f"{jids['dead']} always fails"],
        f"/morgue/{dead_id}": ["InteropDoomed", jids["dead"], "always fails", "jobs.rb"],
        "/metrics": ["Metrics"],
        "/metrics/InteropParked": ["InteropParked"],
    }
    for path, texts in expect.items():
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:2000])
        missing = [text for text in texts if text not in page.text]
        assert not missing, f"{path} lacks {missing}"
    # The list pages link each row to its detail page.
    assert f"/retries/{retry.ref}" in client.get("/retries").text
    assert f"/morgue/{dead.ref}" in client.get("/morgue").text
    # The summary bar and the real-time poll count what Ruby wrote.
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    for stat in ("retries", "scheduled", "dead", "enqueued"):
        assert re.search(rf'data-stat="{stat}">1<', dashboard.text), stat
    totals = client.get("/stats").json()["sidequest"]
    assert (totals["retries"], totals["dead"], totals["scheduled"], totals["processes"],
            totals["enqueued"]) == (1, 1, 1, 1, 1)
    # "Retry now" on the detail page: the Ruby worker runs the job (its second attempt passes).
    answer = client.submit(f"/retries/{retry_id}", {"action": "retry"})
    assert answer.status_code == 303
    assert flash(client.get("/retries").text) == "Retried: 1 of 1."
    ledger.wait_done([jids["retry"]])
    ledger.check({jids["retry"]: retry_args}, runner="ruby")
    assert ledger.attempts(jids["retry"]) == 2 and RetrySet().size == 0
    ledger.r.set("release", 1)
    ledger.wait_done([blocked])
