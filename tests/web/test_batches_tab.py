"""The Batches tab shows each recent batch's progress, state and failed jobs (linked)."""

from __future__ import annotations

import html

import redis

from sidequest import Batch, Job
from sidequest.batch import update
from web_helpers import Client


class Step(Job):
    def perform(self) -> None:
        pass


def test_batches_show_progress_state_and_failures(client: Client, r: redis.Redis) -> None:
    assert "No batches in the last 30 days" in client.get("/batches").text
    batch = Batch(description="nightly <import>")
    with batch.jobs():
        first, second, third = (Step.perform_async() for _ in range(3))
    assert first and second and third
    update(batch.ancestry, first, "success")
    update(batch.ancestry, second, "failure")
    page = client.get("/batches")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "nightly <import>" in text and "<strong>nightly <import></strong>" not in page.text
    row = text[text.index(f'data-bid="{batch.bid}"'):]
    row = row[:row.index("</tr>")]
    assert 'max="3" value="1"' in row and '<td class="num pending">2</td>' in row
    assert f'href="/retries?substr={second}"' in row and "running" in row
    # A link to look for the failed job in each set, not a "(dead set)" that reads as a fact.
    assert f'href="/morgue?substr={second}">Dead</a>' in row and "dead set" not in row
    update(batch.ancestry, third, "success")
    update(batch.ancestry, second, "success")
    assert "succeeded" in client.get("/batches").text
