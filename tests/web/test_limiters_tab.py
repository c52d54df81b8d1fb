"""The Limiters tab lists the limiters used in the last hour with their kind, limit, use
now and reschedules; a real limiter fills it, and a full one says so."""

from __future__ import annotations

import html
import time

import redis

from sidequest import keys, limiter
from web_helpers import Client, job


def test_limiters_in_use_are_listed(client: Client, r: redis.Redis) -> None:
    assert "No rate limiter was used" in client.get("/limiters").text
    stripe = limiter.concurrent("stripe", 2, lock_timeout=30)
    stripe.acquire()
    stripe.acquire()
    api = limiter.bucket("github", 5000, "hour")
    api.acquire()
    window = limiter.window("sms <b>", 10, "second")
    window.acquire()
    # Both slots are held. (Not shown by a third acquire: from this thread, which holds them
    # both, it is refused as waiting for itself.)
    assert r.zcard(keys.limiter("stripe")) == 2
    # 2 in the current ten minutes, 1 forty minutes ago; 5 seventy minutes ago are past the
    # hour (the count was of the hour since the first reschedule, not of the last hour).
    now = time.time()
    r.set(keys.limiter_over("stripe", keys.over_span(now)), 2)
    r.set(keys.limiter_over("stripe", keys.over_span(now - 2400)), 1)
    r.set(keys.limiter_over("stripe", keys.over_span(now - 4200)), 5)
    page = client.get("/limiters")
    assert page.status_code == 200
    text = html.unescape(page.text)
    row = text[text.index('data-name="stripe"'):]
    row = row[:row.index("</tr>")]
    assert "concurrent" in row and "2 at once" in row and ">full<" in row
    assert '<td class="num over">3</td>' in row
    row = text[text.index('data-name="github"'):]
    row = row[:row.index("</tr>")]
    assert "5000 per 3600 s" in row and '<td class="num in-use">1</td>' in row
    assert "sms <b>" in text and "<strong>sms <b></strong>" not in page.text  # escaped
    stripe.release()
    stripe.release()
    assert ">full<" not in client.get("/limiters").text


def test_a_job_sent_back_by_a_limiter_says_which_in_the_schedule(client: Client,
                                                                  r: redis.Redis) -> None:
    later = time.time() + 60
    r.zadd("schedule", {job("a" * 24, overlimit_count=3, overlimit_name="sms <b>"): later,
                        job("b" * 24, overlimit_count=1, overlimit_name="stripe"): later,
                        job("c" * 24, overlimit_count="x", overlimit_name="odd"): later,
                        job("d" * 24): later})
    page = client.get("/scheduled")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "over limit 'sms <b>', 3 times" in text and "<b>'" not in page.text  # escaped
    assert "over limit 'stripe', 1 time<" in text
    assert text.count("over limit") == 2, "a malformed count or a plain job gets no note"
