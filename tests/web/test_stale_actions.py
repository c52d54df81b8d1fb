"""Actions on what a page showed, after others changed it: "Delete (all N)" says how many
more than N it deleted (jobs that failed after the page was drawn, which nobody saw; before,
"Delete (all 1,000)" said only "Deleted: 1500."; not refused, since in a failure storm the set
grows between any page and its press); a row acted on by someone else meanwhile, and a queue
deleted already, are said to be so, not "Retried: 0 of 1." or "Deleted the queue"."""

from __future__ import annotations

import html
import re
import time

import pytest
import redis

from web_helpers import Client, failed, flash

pytestmark = pytest.mark.redis


def test_delete_all_says_how_many_more_than_the_page_showed(client: Client,
                                                             r: redis.Redis) -> None:
    r.zadd("retry", {failed(f"{i:024x}"): time.time() + 60 for i in range(3)})
    page = client.get("/retries").text
    shown = re.search(r'name="shown" value="(\d+)"', page)
    assert shown and shown.group(1) == "3" and "Delete (all 3)" in page
    r.zadd("retry", {failed(f"{i:024x}"): time.time() + 60 for i in range(3, 5)})
    answer = client.submit("/retries/all/delete", {"shown": shown.group(1)})
    said = html.unescape(flash(client.get(answer.headers["location"]).text))
    assert r.zcard("retry") == 0, said
    assert said == ("Deleted: 5. That is 2 more than the 3 this page showed: they came in"
                    " after it was drawn.")
    r.zadd("dead", {failed("d" * 24): time.time()})
    answer = client.submit("/morgue/all/delete", {"shown": "1"})
    assert html.unescape(flash(client.get(answer.headers["location"]).text)) == "Deleted: 1."
    r.zadd("dead", {failed("e" * 24): time.time()})
    answer = client.submit("/morgue/all/delete", {"shown": "\u00b2"})  # a digit int() refuses
    assert answer.status_code == 303, answer.text
    assert html.unescape(flash(client.get(answer.headers["location"]).text)) == "Deleted: 1."


def test_a_row_acted_on_meanwhile_is_said_to_be_gone(client: Client, r: redis.Redis) -> None:
    r.zadd("retry", {failed(f"{i:024x}"): time.time() + 60 for i in range(2)})
    keys = re.findall(r'name="key" value="([^"]+)"', client.get("/retries").text)
    assert len(keys) == 2
    r.zremrangebyrank("retry", 0, 0)  # another operator retried one
    answer = client.submit("/retries", {"action": "retry", "key": [html.unescape(k) for k in keys]})
    assert html.unescape(flash(client.get(answer.headers["location"]).text)) == (
        "Retried: 1 of 2. 1 job was no longer in Retries: acted on since the page was shown (by"
        " someone else, or a worker).")


def test_deleting_a_queue_deleted_already_says_so(client: Client, r: redis.Redis) -> None:
    r.lpush("queue:sms", failed("c" * 24))
    r.sadd("queues", "sms")
    said = html.unescape(flash(client.get(client.submit("/queues/sms/delete").headers[
        "location"]).text))
    assert said == "Deleted the queue sms and its 1 job."
    again = client.submit("/queues/sms/delete")
    assert html.unescape(flash(client.get(again.headers["location"]).text)) == (
        "The queue sms held no jobs (empty, or deleted already by someone else); it is gone"
        " from the list.")
