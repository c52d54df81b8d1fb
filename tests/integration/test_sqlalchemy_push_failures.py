"""after_commit when a push goes wrong: arguments perform cannot take are refused by
after_commit itself, before the commit; a push failing at the commit (Redis down) neither
stops the others nor leaves the session stuck, and commit() raises one error that says the
transaction has committed and holds the failed pushes for the caller to push again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm import Session as PlainSession

import sidequest
import sidequest.connection
from sidequest import ConfigError, Job, RedisUnavailable, job
from sidequest.contrib.sqlalchemy import (
    AfterCommitFailed,
    AfterCommitRedisUnavailable,
    after_commit,
)


class Base(DeclarativeBase):
    pass


class Row(Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class SendWelcome(Job):
    def perform(self, user_id: int) -> None:
        pass


@job
def send_receipt(order_id: int, *, copy: bool = False) -> None:
    pass


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def queued_args(r: redis.Redis, queue: str = "default") -> list[Any]:
    return [json.loads(raw)["args"] for raw in r.lrange(f"queue:{queue}", 0, -1)][::-1]


def rows(engine: Engine) -> int:
    with PlainSession(engine) as session:
        return session.scalar(select(func.count()).select_from(Row)) or 0


def test_arguments_that_are_not_json_are_refused_at_after_commit(
        engine: Engine, r: redis.Redis) -> None:
    """A date or an object (a Celery habit) raised only at commit(), after the rows were
    written."""
    import datetime

    with PlainSession(engine) as session:
        session.add(Row(name="erin"))
        with pytest.raises(TypeError, match=r"args\[0\] is .*date"):
            after_commit(session, SendWelcome.perform_async, datetime.date(2026, 1, 2))
        with pytest.raises(TypeError, match=r"kwargs"):
            after_commit(session, send_receipt.perform_async, 1, copy=object())
        after_commit(session, SendWelcome.perform_async, 12)
        session.commit()
    assert queued_args(r) == [[12]]


def test_a_push_perform_cannot_take_is_refused_at_after_commit(
        engine: Engine, r: redis.Redis) -> None:
    """It raised at commit(), after the row was written, and the valid push after it was
    never made."""
    with PlainSession(engine) as session:
        session.add(Row(name="dave"))
        after_commit(session, SendWelcome.perform_async, 10)
        with pytest.raises(TypeError, match=r"SendWelcome.perform\(user_id\) cannot take"):
            after_commit(session, SendWelcome.perform_async, 11, "extra")
        with pytest.raises(TypeError, match=r"cannot take these arguments: no parameter "
                                            r"named 'copies'; did you mean 'copy'\?"):
            after_commit(session, send_receipt.perform_async, 1, copies=True)
        with pytest.raises(TypeError, match=r"SendWelcome.perform\(user_id\) cannot take"):
            after_commit(session, SendWelcome.set(queue="low").perform_in, 60, 11, 12)
        with pytest.raises(TypeError, match=r"after_commit\(session, .*SendWelcome.perform_at,"
                                            r" \.\.\.\): missing a required argument: 'when'"):
            after_commit(session, SendWelcome.perform_at)
        after_commit(session, SendWelcome.perform_async, 12)
        after_commit(session, send_receipt.set(queue="low").perform_in, 60, 7, copy=True)
        session.commit()
    assert queued_args(r) == [[10], [12]]
    assert r.zcard("schedule") == 1
    assert rows(engine) == 1


def test_every_push_is_made_when_one_fails_and_the_error_holds_the_failed_ones(
        engine: Engine, r: redis.Redis) -> None:
    def flaky(user_id: int) -> str | None:
        if user_id == 11:
            raise RedisUnavailable("could not reach Redis at redis://x (refused); the job was"
                                   " not enqueued, so retry later or fail the request")
        return SendWelcome.perform_async(user_id)

    with PlainSession(engine) as session:
        session.add(Row(name="dave"))
        for user_id in (10, 11, 12):
            after_commit(session, flaky, user_id)
        with pytest.raises(AfterCommitRedisUnavailable) as caught:
            session.commit()
        error = caught.value
        assert isinstance(error, RedisUnavailable), "what callers catch today still catches it"
        assert queued_args(r) == [[10], [12]], "the pushes after the failed one were made"
        assert rows(engine) == 1
        message = str(error)
        assert "the transaction HAS committed, but 1 of the 3 pushes" in message
        assert "flaky(11): RedisUnavailable" in message
        assert "first error: could not reach Redis at redis://x (refused))" in message
        assert "fail the request" not in message, "advice for a lone push, wrong here"
        assert "Do not retry the transaction" in message and ".push_again()" in message
        assert error.total == 3 and [push.args for push in error.failed] == [(11,)]
        assert isinstance(error.__cause__, RedisUnavailable)
        # The session closed its transaction before raising: it is usable still.
        session.add(Row(name="erin"))
        session.commit()
    assert rows(engine) == 2


def test_redis_down_at_the_commit_names_every_lost_job(engine: Engine, redis_url: str,
                                                        r: redis.Redis) -> None:
    sidequest.configure("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        with PlainSession(engine) as session, pytest.raises(AfterCommitRedisUnavailable) as caught:
            session.add(Row(name="dave"))
            after_commit(session, SendWelcome.perform_async, 10)
            after_commit(session, send_receipt.perform_async, 20, copy=True)
            session.commit()
    finally:
        sidequest.connection.reset()
    assert rows(engine) == 1
    message = str(caught.value)
    assert "but 2 of the 2 pushes" in message
    assert "SendWelcome.perform_async(10): RedisUnavailable" in message
    assert "send_receipt.perform_async(20, copy=True): RedisUnavailable" in message
    sidequest.configure(redis_url=redis_url)
    for failed in caught.value.failed:
        failed.push_again()
    assert queued_args(r) == [[10], [20]]


def test_failures_of_different_kinds_raise_the_common_base(engine: Engine,
                                                           r: redis.Redis) -> None:
    def down() -> None:
        raise RedisUnavailable("could not reach Redis")

    def wrong() -> None:
        raise ConfigError("a bad URL")

    long_text = "x" * 200
    with PlainSession(engine) as session, pytest.raises(AfterCommitFailed) as caught:
        session.add(Row(name="dave"))
        after_commit(session, down)
        after_commit(session, wrong)
        after_commit(session, SendWelcome.perform_async, long_text)
        session.commit()
    assert type(caught.value) is AfterCommitFailed
    assert "2 of the 3 pushes" in str(caught.value)
    assert queued_args(r) == [[long_text]]


def test_a_long_argument_and_many_failures_are_cut_short(engine: Engine) -> None:
    def down(text: str) -> None:
        raise RedisUnavailable("could not reach Redis")

    with PlainSession(engine) as session, pytest.raises(AfterCommitRedisUnavailable) as caught:
        for _ in range(7):
            after_commit(session, down, "y" * 500)
        session.commit()
    message = str(caught.value)
    assert "y" * 500 not in message and "yyy...): RedisUnavailable" in message
    assert "; and 2 more (first error" in message
    assert len(caught.value.failed) == 7
