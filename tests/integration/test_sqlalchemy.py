"""sidequest.contrib.sqlalchemy with a real SQLAlchemy and SQLite: a push made with
after_commit happens at the commit and never on a rollback or a close; session_per_job hands
every job a fresh session (nothing left over from the job before) in a real in-process
worker, async jobs included, which it lets run on the event loop, not one per thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, String, create_engine, select
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.ext.asyncio import async_scoped_session, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, scoped_session, sessionmaker
from sqlalchemy.orm import Session as PlainSession

from helpers import running_worker, wait_for
from sidequest import Job, keys, middleware
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
#: A session per task: per async job under session_per_job. Unbound: the jobs using it
#: only add objects (no I/O), as SQLite has no async driver here.
TaskSession: async_scoped_session[Any] = async_scoped_session(async_sessionmaker(),
                                                              scopefunc=asyncio.current_task)
SCOPED: dict[str, Any] = {"scoped_session": Session, "async_scoped_session": TaskSession}
seen: list[Any] = []


class Welcome(Job):
    def perform(self, user_id: int) -> None:
        session = Session()
        seen.append((id(session), len(session.identity_map), session.get(User, user_id).name))
        session.add(User(name="left behind, uncommitted"))  # must not reach the next job


class Adds(Job):
    """Adds a user on the loop thread's session; commits it, or leaves it uncommitted."""

    async def perform(self, name: str, commit: bool) -> None:
        session = Session()
        session.add(User(name=name))
        session.flush()  # in the database, uncommitted
        if commit:
            session.commit()
        seen.append(name)


class Gated(Job):
    """Adds a user to its session, then waits until three such jobs are running at once."""

    retry = False
    gate: asyncio.Event | None = None  # made on the worker's loop by the first job

    async def perform(self, kind: str) -> None:
        if Gated.gate is None:
            Gated.gate = asyncio.Event()
        session, user = SCOPED[kind](), User(name=f"job {len(seen)}")
        session.add(user)
        seen.append((session, user))
        if len(seen) == 3:
            Gated.gate.set()
        await asyncio.wait_for(Gated.gate.wait(), 15)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    Base.metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def db(engine: Engine, redis_url: str) -> Iterator[None]:
    Session.configure(bind=engine)
    seen.clear()
    Gated.gate = None
    try:
        yield
    finally:
        Session.remove()


@pytest.fixture
def per_job() -> Iterator[Callable[[Any], Any]]:
    """session_per_job, its middlewares taken out of the chain at the end."""
    added: list[Any] = []

    def add(scoped: Any) -> Any:
        added.append(session_per_job(scoped))
        return added[-1]

    try:
        yield add
    finally:
        for entry in added:
            middleware.server.remove(entry)


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


def test_an_async_push_or_a_push_in_a_batch_block_is_refused_at_once(
        db: None, r: redis.Redis) -> None:
    """aperform_async made a coroutine at the commit that was never awaited: the commit went
    through and no job was pushed. Inside `with batch.jobs():` the block ended before the
    commit: the batch was sealed empty (its callback run) and the jobs were no members."""
    from sidequest import Batch

    with Session() as session, session.begin():
        with pytest.raises(TypeError, match=r"give it .*Welcome\.perform_async, not the async"
                                            r" .*Welcome\.aperform_async"):
            after_commit(session, Welcome.aperform_async, 1)
        with pytest.raises(ValueError, match=r"after_commit cannot be used inside"
                                             r" `with batch.jobs\(\):`"), Batch().jobs():
            after_commit(session, Welcome.perform_async, 1)
    assert r.llen("queue:default") == 0


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


def _inprogress(r: redis.Redis) -> int:
    identity = next(iter(r.smembers("processes")), "")
    return int(r.llen(keys.inprogress(identity))) if identity else 0


def _names(engine: Engine) -> list[str]:
    with PlainSession(engine) as session:
        return list(session.scalars(select(User.name).order_by(User.id)))


def test_an_async_jobs_uncommitted_rows_are_not_committed_by_the_next_async_job(
        db: None, engine: Engine, r: redis.Redis, per_job: Callable[[Any], Any]) -> None:
    """Async jobs share the event loop's thread, hence its thread-local session: removed in
    a worker thread instead, A's flushed row stayed in it, and B's commit committed it."""
    per_job(Session)
    with running_worker():
        Adds.perform_async("A", False)
        wait_for(lambda: seen == ["A"] and not r.llen("queue:default") and not _inprogress(r),
                 what="job A run to its end")
        Adds.perform_async("B", True)
        wait_for(lambda: seen == ["A", "B"], what="job B")
    assert _names(engine) == ["B"]


@pytest.mark.parametrize("kind", ["scoped_session", "async_scoped_session"])
def test_async_jobs_under_session_per_job_run_beyond_the_thread_count(
        db: None, engine: Engine, r: redis.Redis, per_job: Callable[[Any], Any],
        kind: str) -> None:
    pytest.importorskip("greenlet", reason="AsyncSession.close() runs in a greenlet")
    per_job(SCOPED[kind])
    for _ in range(3):
        Gated.perform_async(kind)
    with running_worker(concurrency=1):
        # Each holding the one thread, the second would not start before the first's 15 s.
        wait_for(lambda: len(seen) == 3, timeout=8, what="three async jobs at once at -c 1")
        wait_for(lambda: not r.llen("queue:default") and not _inprogress(r),
                 what="the three jobs' ends")
    sessions = {id(session) for session, _ in seen}
    assert len(sessions) == (1 if kind == "scoped_session" else 3)
    for session, user in seen:
        assert user not in session, "each job's session was removed (closed) after it"
    assert _names(engine) == []


def test_a_thread_local_session_on_the_loop_stays_until_the_last_async_job_ends(
        db: None, per_job: Callable[[Any], Any], caplog: pytest.LogCaptureFixture) -> None:
    """Every async job on the loop's thread shares its thread-local session: removed when
    the first ended, it went from under the second, in the middle of its work."""
    caplog.set_level(logging.WARNING, logger="sidequest")
    remove_after = per_job(Session)
    ends = {"A": asyncio.Event(), "B": asyncio.Event()}

    async def job(name: str) -> None:
        Session().add(User(name=name))
        await ends[name].wait()

    async def both() -> None:
        a, b = (asyncio.create_task(remove_after.acall(None, {}, "default",
                                                        lambda name=name: job(name)))
                for name in "AB")
        await _until(lambda: len(Session().new) == 2)
        ends["A"].set()
        await a
        assert Session.registry.has(), "B's session is still there"
        assert sorted(user.name for user in Session().new) == ["A", "B"]
        ends["B"].set()
        await b
        assert not Session.registry.has(), "removed when the last job ended"

    asyncio.run(both())
    shared = [r.getMessage() for r in caplog.records if "share one session" in r.getMessage()]
    assert len(shared) == 1, shared
    assert "async_scoped_session(async_sessionmaker(engine), " \
           "scopefunc=asyncio.current_task)" in shared[0]


def test_a_job_with_a_time_limit_leaves_no_task_scoped_session_behind(
        db: None, per_job: Callable[[Any], Any]) -> None:
    # The time limit runs the job in its own task (asyncio.wait_for made another one, where
    # its session was kept for good, with its connection).
    pytest.importorskip("greenlet", reason="AsyncSession.close() runs in a greenlet")
    from sidequest.worker.async_jobs import timed

    remove_after = per_job(TaskSession)

    async def job() -> None:
        TaskSession().add(User(name="limited"))

    async def runs() -> None:
        for _ in range(3):
            await remove_after.acall(None, {}, "default", timed(job, 30.0))

    asyncio.run(runs())
    assert TaskSession.registry.registry == {}


def test_an_async_scoped_session_is_removed_in_each_jobs_own_task(
        db: None, per_job: Callable[[Any], Any], caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("greenlet", reason="AsyncSession.close() runs in a greenlet")
    caplog.set_level(logging.WARNING, logger="sidequest")
    remove_after = per_job(TaskSession)
    ends = {"A": asyncio.Event(), "B": asyncio.Event()}
    sessions: dict[str, Any] = {}

    async def job(name: str) -> None:
        sessions[name] = TaskSession()
        sessions[name].add(User(name=name))
        await ends[name].wait()

    async def run(name: str) -> bool:
        await remove_after.acall(None, {}, "default", lambda: job(name))
        return TaskSession.registry.has()  # in the job's task: its session is gone

    async def both() -> None:
        a, b = asyncio.create_task(run("A")), asyncio.create_task(run("B"))
        await _until(lambda: len(sessions) == 2)
        assert sessions["A"] is not sessions["B"]
        ends["A"].set()
        assert await a is False
        assert len(sessions["A"].new) == 0, "A's session closed"
        assert len(sessions["B"].new) == 1, "B's untouched"
        ends["B"].set()
        assert await b is False
        assert len(sessions["B"].new) == 0

    asyncio.run(both())
    assert not [r for r in caplog.records if "share one session" in r.getMessage()]


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``check`` on the running loop, failing at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_rollback_before_the_transaction_began_forgets_the_push(
        db: None, engine: Engine, r: redis.Redis) -> None:
    """A plain Session with no transaction yet: the push waited for none, and a rollback()
    there fired no event, so it went out at the next, unrelated commit."""
    session = PlainSession(engine)
    after_commit(session, Welcome.perform_async, 1)
    session.rollback()
    with session.begin():
        session.add(User(name="ada"))
    assert r.llen("queue:default") == 0
    session.close()


@pytest.mark.parametrize("begun", [False, True], ids=["no-transaction-yet", "begun-by-add"])
def test_a_close_forgets_the_push(db: None, engine: Engine, r: redis.Redis,
                                  begun: bool) -> None:
    """close() fires no rollback event (only after_transaction_end, if a transaction)."""
    session = PlainSession(engine)
    if begun:
        session.add(User(name="never committed"))
    after_commit(session, Welcome.perform_async, 1)
    session.close()
    with session.begin():
        session.add(User(name="ada"))
    assert r.llen("queue:default") == 0
    assert _names(engine) == ["ada"]
    session.close()


def test_a_push_before_any_transaction_goes_out_once_at_the_commit(
        db: None, engine: Engine, r: redis.Redis) -> None:
    session = PlainSession(engine)
    after_commit(session, Welcome.perform_async, 1)
    session.add(User(name="ada"))
    assert r.llen("queue:default") == 0
    session.commit()
    assert r.llen("queue:default") == 1
    session.add(User(name="bob"))
    session.commit()
    assert r.llen("queue:default") == 1, "once"
    session.close()


def test_a_session_without_autobegin_needs_its_transaction_first(
        db: None, engine: Engine, r: redis.Redis) -> None:
    session = PlainSession(engine, autobegin=False)
    with pytest.raises(InvalidRequestError, match=r"autobegin=False: call session.begin\(\) "
                                                  r"first, then after_commit inside it"):
        after_commit(session, Welcome.perform_async, 1)
    with session.begin():
        after_commit(session, Welcome.perform_async, 1)
    assert r.llen("queue:default") == 1
    session.close()
