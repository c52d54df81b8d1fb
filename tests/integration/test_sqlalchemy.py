"""sidequest.contrib.sqlalchemy with a real SQLAlchemy and SQLite: a push made with
after_commit happens at the commit and never on a rollback; session_per_job hands every job
a fresh session (nothing left over from the job before) in a real in-process worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import String, create_engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, scoped_session, sessionmaker

from helpers import running_worker, wait_for
from sidequest import Job, middleware
from sidequest.contrib.sqlalchemy import after_commit, session_per_job


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Email(Base):
    __tablename__ = "emails"
    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(50), unique=True)


Session: scoped_session[Any] = scoped_session(sessionmaker())
seen: list[Any] = []


class Welcome(Job):
    def perform(self, user_id: int) -> None:
        session = Session()
        seen.append((id(session), len(session.identity_map), session.get(User, user_id).name))
        session.add(User(name="left behind, uncommitted"))  # must not reach the next job


@pytest.fixture
def db(tmp_path: Path, redis_url: str) -> Iterator[None]:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(engine)
    Session.configure(bind=engine)
    seen.clear()
    try:
        yield
    finally:
        Session.remove()
        engine.dispose()


def test_push_happens_at_commit_and_never_on_rollback(db: None, r: redis.Redis) -> None:
    with Session() as session:
        with session.begin():
            user = User(name="ada")
            session.add(user)
            session.flush()
            after_commit(session, Welcome.perform_async, user.id)
            assert r.llen("queue:default") == 0, "not before the commit"
        assert r.llen("queue:default") == 1
        with pytest.raises(RuntimeError), session.begin():
            session.add(User(name="bob"))
            after_commit(session, Welcome.perform_async, 99)
            raise RuntimeError("the request failed")
    assert r.llen("queue:default") == 1, "a rolled-back transaction pushes nothing"
    with Session() as session, session.begin():
        session.add(User(name="cy"))  # a later commit does not replay the dropped push
    assert r.llen("queue:default") == 1


def test_a_savepoint_rollback_forgets_only_its_own_pushes(db: None, r: redis.Redis) -> None:
    """The get-or-create pattern (try a savepoint, roll it back on IntegrityError) must not
    lose the pushes made before it, nor keep the ones made inside it."""
    with Session() as session, session.begin():
        after_commit(session, Welcome.set(queue="outer").perform_async, 1)
        with pytest.raises(ValueError), session.begin_nested():
            after_commit(session, Welcome.set(queue="rolled-back").perform_async, 2)
            with session.begin_nested():  # released, inside the one rolled back
                after_commit(session, Welcome.set(queue="rolled-back").perform_async, 3)
            raise ValueError("duplicate row")
        with session.begin_nested():  # released: its push stands
            after_commit(session, Welcome.set(queue="released").perform_async, 4)
        with pytest.raises(ValueError), session.begin_nested():
            raise ValueError("an empty savepoint rolled back")
        assert r.keys("queue:*") == [], "not before the commit"
    assert sorted(r.keys("queue:*")) == ["queue:outer", "queue:released"]
    assert r.llen("queue:outer") == r.llen("queue:released") == 1


def test_a_failed_flush_in_a_savepoint_keeps_the_pushes_made_before_it(
        db: None, r: redis.Redis) -> None:
    """Get-or-create as written: the savepoint's flush raises IntegrityError. The failed
    flush rolls back its own subtransaction first, which was taken for the whole one."""
    with Session.begin():
        Session.add(Email(address="taken@example.com"))
    with Session() as session, session.begin():
        after_commit(session, Welcome.perform_async, 1)
        with pytest.raises(IntegrityError), session.begin_nested():
            after_commit(session, Welcome.set(queue="rolled-back").perform_async, 2)
            session.add(Email(address="taken@example.com"))
            session.flush()
        assert r.keys("queue:*") == [], "not before the commit"
    assert r.keys("queue:*") == ["queue:default"]
    assert r.llen("queue:default") == 1
    with pytest.raises(IntegrityError), Session() as session, session.begin():
        after_commit(session, Welcome.perform_async, 3)
        session.add(Email(address="taken@example.com"))
        session.flush()  # no savepoint: the whole transaction rolls back, and its push
    assert r.llen("queue:default") == 1


def test_a_scoped_session_is_taken_for_its_session(db: None, r: redis.Redis) -> None:
    """Flask-SQLAlchemy's db.session is a scoped_session: it raised AttributeError."""
    with Session.begin():
        Session.add(User(name="di"))
        after_commit(Session, Welcome.perform_async, 1)
        assert r.llen("queue:default") == 0
    assert r.llen("queue:default") == 1
    with pytest.raises(TypeError, match=r"after_commit needs the push itself .*"
                       r"after_commit\(session, SendWelcome.perform_async, user.id\)"):
        after_commit(Session, "a jid, from a push already made")


def test_each_job_gets_a_fresh_session(db: None) -> None:
    with Session() as session, session.begin():
        session.add_all([User(name="ada"), User(name="bob")])
    remove = session_per_job(Session)
    try:
        Welcome.perform_async(1)
        Welcome.perform_async(2)
        with running_worker(concurrency=1):
            wait_for(lambda: len(seen) == 2, what="both jobs")
    finally:
        middleware.server.remove(remove)
    assert [names for _, _, names in seen] == ["ada", "bob"]
    # The second job's session held only what it loaded: nothing of the first job's.
    assert [count for _, count, _ in seen] == [0, 0]
    with Session() as session:
        assert session.query(User).count() == 2, "uncommitted work was rolled back"
