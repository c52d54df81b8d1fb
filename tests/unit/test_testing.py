"""sidequest.testing: fake and inline modes, without Redis."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sidequest import Job, client, connection, job, middleware, testing
from sidequest.errors import UnknownJobError
from sidequest.job import JobFunction

JID = re.compile(r"^[0-9a-f]{24}$")
#: What the module-level jobs below ran, in order: (wire name, args).
runs: list[tuple[str, list[Any]]] = []
#: The jid and payload each TTRecorder instance saw, to compare with what was pushed.
recorded: list[tuple[str, dict[str, Any]]] = []


class TTSendWelcome(Job):
    queue = "mailers"
    retry = 5

    def perform(self, user_id: int, template: str = "welcome") -> None:
        runs.append((type(self).wire_name(), [user_id, template]))


class TTNightly(Job):
    queue = "mailers"
    name = "TTNightlyReport"

    def perform(self, day: str) -> None:
        runs.append(("TTNightlyReport", [day]))


class TTRecorder(Job):
    def perform(self, *args: Any) -> None:
        recorded.append((self.jid, self.payload))


class TTBoom(Job):
    def perform(self, n: int) -> None:
        runs.append(("TTBoom", [n]))
        if n % 2:
            raise ValueError(f"boom {n}")


class TTChain(Job):
    """Enqueues the next link until ``n`` reaches 0: jobs enqueued while draining."""

    def perform(self, n: int) -> None:
        runs.append(("TTChain", [n]))
        if n > 0:
            TTChain.perform_async(n - 1)


class TTForever(Job):
    def perform(self) -> None:
        TTForever.perform_async()


class TTFanOut(Job):
    def perform(self, width: int) -> None:
        TTSendWelcome.perform_bulk([[i] for i in range(width)])


@job(queue="low", retry=3)
def tt_clear_cache(key: str) -> None:
    runs.append(("tt_clear_cache", [key]))


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    """Every test starts with Redis mode, empty records and store, and ends the same way."""
    runs.clear()
    recorded.clear()
    testing.clear_all()
    with testing.disable():
        yield
    testing.clear_all()


@pytest.fixture
def no_redis(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make any use of Redis fail loudly; the list records attempts made anyway."""
    attempts: list[str] = []

    def refuse() -> Any:
        attempts.append("client")
        raise AssertionError("testing mode touched Redis")

    monkeypatch.setattr(connection, "client", refuse)
    return attempts


@pytest.fixture
def server_calls() -> Iterator[list[tuple[str, str, str, str]]]:
    """A server middleware recording (class, jid, queue, instance jid) around each perform."""
    calls: list[tuple[str, str, str, str]] = []

    def record(
        instance: Job, payload: dict[str, Any], queue: str, call_next: Callable[[], Any]
    ) -> Any:
        calls.append((payload["class"], payload["jid"], queue, instance.jid))
        return call_next()

    testing.server_middleware.add(record)
    try:
        yield calls
    finally:
        testing.server_middleware.remove(record)


def wire(cls: type[Job]) -> str:
    return cls.wire_name()


# --- fake mode: what is stored ------------------------------------------------------------


def test_fake_stores_the_normalized_payload(no_redis: list[str]) -> None:
    testing.fake()
    jid = TTSendWelcome.perform_async(42)
    [stored] = testing.jobs_for(TTSendWelcome)
    assert JID.match(jid)
    assert stored["jid"] == jid
    assert stored["class"] == f"{__name__}.TTSendWelcome" == wire(TTSendWelcome)
    assert stored["args"] == [42]
    assert stored["queue"] == "mailers"
    assert stored["retry"] == 5
    assert type(stored["created_at"]) is float
    assert type(stored["enqueued_at"]) is float
    assert "at" not in stored
    assert runs == []  # stored, not run
    assert no_redis == []


def test_fake_keeps_jobs_per_class_and_per_queue_in_push_order() -> None:
    testing.fake()
    TTSendWelcome.perform_async(1)
    TTNightly.perform_async("mon")
    TTRecorder.perform_async("x")
    TTSendWelcome.perform_async(2)
    assert [j["args"] for j in testing.jobs_for(TTSendWelcome)] == [[1], [2]]
    assert [j["args"] for j in testing.jobs_for(TTNightly)] == [["mon"]]
    assert [j["args"] for j in testing.jobs_for("TTNightlyReport")] == [["mon"]]
    assert [j["args"] for j in testing.queued("mailers")] == [[1], ["mon"], [2]]
    assert [j["args"] for j in testing.queued("default")] == [["x"]]
    assert testing.queued("nothing-here") == []


def test_fake_honours_set_options_and_bulk() -> None:
    testing.fake()
    TTSendWelcome.set(queue="critical", retry=False).perform_async(7)
    jids = TTSendWelcome.perform_bulk([[1], [2], [3]])
    assert [j["args"] for j in testing.queued("critical")] == [[7]]
    assert testing.queued("critical")[0]["retry"] is False
    assert [j["jid"] for j in testing.queued("mailers")] == jids
    assert len(testing.jobs_for(TTSendWelcome)) == 4


def test_fake_stores_a_json_copy_of_the_arguments() -> None:
    testing.fake()
    options = {"tags": ["a"]}
    TTRecorder.perform_async(options)
    options["tags"].append("changed after the push")
    assert testing.jobs_for(TTRecorder)[0]["args"] == [{"tags": ["a"]}]


def test_jobs_is_the_live_list_so_the_sidekiq_idiom_clear_works() -> None:
    testing.fake()
    TTRecorder.perform_async(1)
    TTRecorder.perform_async(2)
    assert TTRecorder.jobs is testing.jobs_for(TTRecorder)
    TTRecorder.jobs.clear()
    assert testing.jobs_for(TTRecorder) == []
    assert TTRecorder.drain() == 0
    TTRecorder.perform_async(3)
    queue = TTRecorder.jobs[0]["queue"]
    TTRecorder.jobs.pop(0)
    assert testing.queued(queue) == []


def test_fake_keeps_scheduled_jobs_with_at_and_drains_them() -> None:
    testing.fake()
    before = time.time()
    TTSendWelcome.perform_in(300, 1)
    TTSendWelcome.perform_at(before + 3600, 2)
    first, second = testing.jobs_for(TTSendWelcome)
    assert before + 299 < first["at"] < before + 302
    assert second["at"] == pytest.approx(before + 3600)
    assert "enqueued_at" not in first
    assert testing.drain(TTSendWelcome) == 2
    assert runs == [(wire(TTSendWelcome), [1, "welcome"]), (wire(TTSendWelcome), [2, "welcome"])]


def test_non_json_arguments_raise_and_store_nothing() -> None:
    testing.fake()
    with pytest.raises(TypeError, match="tuple"):
        TTRecorder.perform_async((1, 2))
    with pytest.raises(TypeError, match="args"):
        TTRecorder.perform_bulk([[1], [{1, 2}]])
    assert testing.jobs_for(TTRecorder) == []


def test_client_middleware_runs_and_can_change_or_cancel_the_push() -> None:
    def stamp(payload: dict[str, Any], queue: str, call_next: Callable[[], Any]) -> Any:
        if payload["args"] == ["cancel"]:
            return None
        payload["tenant"] = "acme"
        return call_next()

    middleware.client.add(stamp)
    try:
        testing.fake()
        kept = TTRecorder.perform_async("keep")
        cancelled = TTRecorder.perform_async("cancel")
    finally:
        middleware.client.remove(stamp)
    assert cancelled is None
    [stored] = testing.jobs_for(TTRecorder)
    assert (stored["jid"], stored["tenant"]) == (kept, "acme")


def test_fake_mode_never_touches_redis(no_redis: list[str]) -> None:
    testing.fake()
    TTSendWelcome.perform_async(1)
    TTSendWelcome.perform_in(60, 2)
    TTSendWelcome.perform_bulk([[3]])
    testing.drain_all()
    assert no_redis == []


def test_disabled_mode_goes_to_redis(no_redis: list[str]) -> None:
    # The control for the test above: without a testing mode the push reaches Redis.
    with pytest.raises(AssertionError, match="touched Redis"):
        TTSendWelcome.perform_async(1)
    assert no_redis == ["client"]


def test_pushes_from_many_threads_are_all_kept() -> None:
    testing.fake()
    start = threading.Barrier(8)

    def push(worker: int) -> None:
        start.wait()
        for i in range(100):
            TTRecorder.perform_async(worker, i)

    threads = [threading.Thread(target=push, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = testing.jobs_for(TTRecorder)
    assert len(stored) == 800
    assert len({j["jid"] for j in stored}) == 800
    for worker in range(8):  # each thread's jobs stay in its push order
        assert [j["args"][1] for j in stored if j["args"][0] == worker] == list(range(100))


# --- fake mode: running queued jobs -------------------------------------------------------


def test_drain_runs_the_class_jobs_in_order_and_empties_it() -> None:
    testing.fake()
    TTSendWelcome.perform_async(1)
    TTRecorder.perform_async("other class")
    TTSendWelcome.perform_async(2, "promo")
    assert testing.drain(TTSendWelcome) == 2
    assert runs == [(wire(TTSendWelcome), [1, "welcome"]), (wire(TTSendWelcome), [2, "promo"])]
    assert testing.jobs_for(TTSendWelcome) == []
    assert len(testing.jobs_for(TTRecorder)) == 1  # other classes are left alone


def test_drain_runs_jobs_enqueued_while_draining() -> None:
    testing.fake()
    TTChain.perform_async(3)
    assert testing.drain(TTChain) == 4
    assert runs == [("TTChain", [3]), ("TTChain", [2]), ("TTChain", [1]), ("TTChain", [0])]
    assert testing.jobs_for(TTChain) == []


def test_drain_reraises_the_first_exception_and_keeps_the_rest() -> None:
    testing.fake()
    TTBoom.perform_bulk([[0], [1], [2], [3]])
    with pytest.raises(ValueError, match="boom 1"):
        testing.drain(TTBoom)
    # The failing job was removed before it ran; the ones after it are still queued.
    assert [j["args"] for j in testing.jobs_for(TTBoom)] == [[2], [3]]
    with pytest.raises(ValueError, match="boom 3"):
        testing.drain(TTBoom)
    assert runs == [("TTBoom", [0]), ("TTBoom", [1]), ("TTBoom", [2]), ("TTBoom", [3])]


def test_drain_gives_the_job_its_jid_and_payload() -> None:
    testing.fake()
    jid = TTRecorder.perform_async("a", 1)
    [stored] = testing.jobs_for(TTRecorder)
    testing.drain(TTRecorder)
    assert recorded == [(jid, stored)]


def test_drain_runs_the_server_middleware(server_calls: list[tuple[str, str, str, str]]) -> None:
    testing.fake()
    jid = TTSendWelcome.perform_async(5)
    testing.drain(TTSendWelcome)
    assert server_calls == [(wire(TTSendWelcome), jid, "mailers", jid)]


def test_the_global_server_chain_does_not_run_in_testing_modes(
    server_calls: list[tuple[str, str, str, str]],
) -> None:
    seen: list[str] = []

    def production_only(
        instance: Job, payload: dict[str, Any], queue: str, call_next: Callable[[], Any]
    ) -> Any:
        seen.append(payload["jid"])
        return call_next()

    middleware.server.add(production_only)
    try:
        testing.fake()
        TTSendWelcome.perform_async(1)
        testing.drain(TTSendWelcome)
        with testing.inline():
            TTSendWelcome.perform_async(2)
    finally:
        middleware.server.remove(production_only)
    assert seen == []
    assert len(server_calls) == 2  # the testing chain ran for both


def test_server_middleware_can_skip_perform() -> None:
    def skip(
        instance: Job, payload: dict[str, Any], queue: str, call_next: Callable[[], Any]
    ) -> None:
        return None  # not calling call_next: the job does not run

    testing.server_middleware.add(skip)
    try:
        testing.fake()
        TTSendWelcome.perform_async(1)
        assert testing.drain(TTSendWelcome) == 1
    finally:
        testing.server_middleware.remove(skip)
    assert runs == []


def test_perform_one_runs_exactly_one() -> None:
    testing.fake()
    first = TTSendWelcome.perform_async(1)
    TTSendWelcome.perform_async(2)
    ran = testing.perform_one(TTSendWelcome)
    assert ran["jid"] == first
    assert runs == [(wire(TTSendWelcome), [1, "welcome"])]
    assert [j["args"] for j in testing.jobs_for(TTSendWelcome)] == [[2]]


def test_perform_one_with_nothing_queued_says_so() -> None:
    testing.fake()
    with pytest.raises(testing.EmptyQueueError, match="TTSendWelcome"):
        testing.perform_one(TTSendWelcome)


def test_perform_one_reraises_and_removes_the_job() -> None:
    testing.fake()
    TTBoom.perform_async(1)
    with pytest.raises(ValueError, match="boom 1"):
        testing.perform_one(TTBoom)
    assert testing.jobs_for(TTBoom) == []


def test_drain_all_runs_every_class_in_push_order_with_offspring() -> None:
    testing.fake()
    TTSendWelcome.perform_async(1)
    TTChain.perform_async(1)
    TTNightly.perform_async("tue")
    tt_clear_cache.perform_async("home")
    assert testing.drain_all() == 5
    assert runs == [
        (wire(TTSendWelcome), [1, "welcome"]),
        ("TTChain", [1]),
        ("TTNightlyReport", ["tue"]),
        ("tt_clear_cache", ["home"]),
        ("TTChain", [0]),  # enqueued by TTChain(1), after the others
    ]
    assert testing.queued("default") == testing.queued("mailers") == testing.queued("low") == []


def test_drain_all_with_nothing_queued_runs_nothing() -> None:
    testing.fake()
    assert testing.drain_all() == 0


def test_the_helpers_refuse_to_answer_while_pushes_go_to_redis() -> None:
    # A test that forgot the fake fixture: an empty list or a drain of 0 would let it pass
    # while its jobs went to Redis.
    with pytest.raises(RuntimeError, match=r"TTRecorder\.jobs works on .* fake mode is off"):
        TTRecorder.jobs  # noqa: B018
    for call, name in ((TTRecorder.drain, r"TTRecorder\.drain\(\)"),
                       (TTRecorder.perform_one, r"TTRecorder\.perform_one\(\)"),
                       (testing.drain_all, r"testing\.drain_all\(\)"),
                       (lambda: testing.queued("default"), r"testing\.queued\(\)")):
        with pytest.raises(RuntimeError, match=name + ".*with testing.fake"):
            call()
    TTRecorder.clear()  # a teardown's clear is harmless in any mode


def test_after_a_fake_block_the_helpers_still_read_and_clear() -> None:
    # A teardown after `with testing.fake(): yield` that empties a class's list, which no
    # test queued anything for: nothing went to Redis, nothing to refuse.
    with testing.fake():
        pass
    assert TTRecorder.jobs == []
    TTRecorder.jobs.clear()
    testing.clear_all()  # a new start: a test that never turns fake mode on is told so
    with pytest.raises(RuntimeError, match="fake mode is off"):
        TTRecorder.jobs  # noqa: B018


def test_a_drain_of_a_name_nothing_answers_to_is_refused() -> None:
    testing.fake()
    TTRecorder.perform_async(1)
    typo = TTRecorder.wire_name() + "s"
    with pytest.raises(UnknownJobError, match=f"drain: no job class named '{typo}'.*did you"
                                              f" mean '{TTRecorder.wire_name()}'"):
        testing.drain(typo)
    with pytest.raises(UnknownJobError, match="perform_one: no job class named 'Elsewhere'"):
        testing.perform_one("Elsewhere")
    assert testing.drain(TTRecorder.wire_name()) == 1  # the right name still drains


def test_an_endless_chain_fails_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testing, "MAX_ROUNDS", 50)
    testing.fake()
    TTForever.perform_async()
    with pytest.raises(testing.EndlessDrainError, match=r"50 rounds.*TTForever"):
        testing.drain_all()
    TTForever.perform_async()
    with pytest.raises(testing.EndlessDrainError):
        testing.drain(TTForever)


def test_the_round_limit_counts_generations_not_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many jobs queued at once, or a wide fan-out, are one or two rounds, not a loop.
    monkeypatch.setattr(testing, "MAX_ROUNDS", 2)
    testing.fake()
    TTFanOut.perform_async(30)
    TTRecorder.perform_bulk([[i] for i in range(30)])
    assert testing.drain_all() == 1 + 30 + 30
    assert len(recorded) == 30
    assert len(runs) == 30


def test_clear_forgets_one_class_and_clear_all_every_class() -> None:
    testing.fake()
    TTSendWelcome.perform_async(1)
    TTNightly.perform_async("wed")
    tt_clear_cache.perform_async("k")
    testing.clear(TTSendWelcome)
    assert testing.jobs_for(TTSendWelcome) == []
    assert len(testing.jobs_for(TTNightly)) == 1
    testing.clear(tt_clear_cache)
    assert testing.queued("low") == []
    testing.clear_all()
    assert testing.queued("mailers") == []
    assert testing.drain_all() == 0


def test_job_functions_work_with_every_helper() -> None:
    testing.fake()
    jid = tt_clear_cache.perform_async("home")
    [stored] = testing.jobs_for(tt_clear_cache)
    assert (stored["jid"], stored["queue"], stored["retry"]) == (jid, "low", 3)
    assert testing.drain(tt_clear_cache) == 1
    assert runs == [("tt_clear_cache", ["home"])]


def test_a_job_class_unknown_here_is_kept_but_cannot_run() -> None:
    # A job meant for a Ruby process: stored under its wire name; draining it is an error,
    # and it stays queued.
    testing.fake()
    client.push({"class": "Billing::ChargeJob", "args": [1]})
    assert [j["args"] for j in testing.jobs_for("Billing::ChargeJob")] == [[1]]
    with pytest.raises(UnknownJobError, match="Billing::ChargeJob"):
        testing.drain_all()
    assert [j["args"] for j in testing.jobs_for("Billing::ChargeJob")] == [[1]]


# --- inline mode --------------------------------------------------------------------------


def test_inline_runs_the_job_before_perform_async_returns(no_redis: list[str]) -> None:
    testing.inline()
    jid = TTRecorder.perform_async({"k": [1, 2]}, "s")
    [(seen_jid, payload)] = recorded
    assert JID.match(jid)
    assert seen_jid == jid == payload["jid"]
    assert payload["args"] == [{"k": [1, 2]}, "s"]
    assert payload["class"] == wire(TTRecorder)
    assert type(payload["enqueued_at"]) is float
    assert testing.jobs_for(TTRecorder) == []  # nothing kept
    assert no_redis == []


def test_inline_passes_a_json_round_trip_of_the_arguments() -> None:
    seen: list[Any] = []
    original = {"ids": [1, 2]}

    class TTIdentity(Job):
        def perform(self, value: Any) -> None:
            seen.append(value)

    with testing.inline():
        TTIdentity.perform_async(original)
    assert seen == [original]
    assert seen[0] is not original


def test_inline_raises_the_job_exception_to_the_caller() -> None:
    testing.inline()
    TTBoom.perform_async(0)
    with pytest.raises(ValueError, match="boom 1"):
        TTBoom.perform_async(1)
    assert runs == [("TTBoom", [0]), ("TTBoom", [1])]


def test_inline_runs_scheduled_jobs_now_without_at() -> None:
    testing.inline()
    TTRecorder.perform_in(300, "later")
    [(_, payload)] = recorded
    assert "at" not in payload
    assert payload["args"] == ["later"]


def test_inline_runs_jobs_enqueued_by_jobs() -> None:
    testing.inline()
    TTChain.perform_async(2)
    assert runs == [("TTChain", [2]), ("TTChain", [1]), ("TTChain", [0])]


def test_inline_runs_the_server_middleware(server_calls: list[tuple[str, str, str, str]]) -> None:
    testing.inline()
    jid = tt_clear_cache.perform_async("x")
    assert server_calls == [(wire(tt_clear_cache.job_class), jid, "low", jid)]


def test_inline_checks_arguments_before_running() -> None:
    testing.inline()
    with pytest.raises(TypeError, match=r"nan"):
        TTRecorder.perform_async(float("nan"))
    assert recorded == []


# --- switching modes ----------------------------------------------------------------------


def test_global_switch_stays_on_until_disabled() -> None:
    assert testing.mode() == "disabled"
    testing.fake()
    assert testing.mode() == "fake"
    TTRecorder.perform_async(1)
    testing.inline()
    assert testing.mode() == "inline"
    TTRecorder.perform_async(2)
    testing.disable()
    assert testing.mode() == "disabled"
    assert [j["args"] for j in testing.jobs_for(TTRecorder)] == [[1]]
    assert [p["args"] for _, p in recorded] == [[2]]


def test_context_managers_restore_the_previous_mode() -> None:
    with testing.fake() as switch:
        assert switch.mode == testing.mode() == "fake"
        with testing.inline():
            assert testing.mode() == "inline"
            TTRecorder.perform_async("ran")
        assert testing.mode() == "fake"
        TTRecorder.perform_async("kept")
    assert testing.mode() == "disabled"
    assert [p["args"] for _, p in recorded] == [["ran"]]
    assert [j["args"] for j in testing.jobs_for(TTRecorder)] == [["kept"]]


def test_context_manager_restores_after_an_exception(no_redis: list[str]) -> None:
    testing.fake()
    with pytest.raises(ValueError, match="boom"), testing.inline():
        TTBoom.perform_async(1)
    assert testing.mode() == "fake"
    TTRecorder.perform_async(1)  # still faked: the no_redis fixture would raise otherwise
    assert len(testing.jobs_for(TTRecorder)) == 1


def test_disable_as_a_context_manager_reaches_redis(no_redis: list[str]) -> None:
    testing.fake()
    with testing.disable(), pytest.raises(AssertionError, match="touched Redis"):
        TTRecorder.perform_async(1)
    assert testing.mode() == "fake"
    TTRecorder.perform_async(2)
    assert [j["args"] for j in testing.jobs_for(TTRecorder)] == [[2]]


# --- the class-level API (needs the delegating attributes on Job) --------------------------


def test_class_level_helpers() -> None:
    testing.fake()
    TTSendWelcome.perform_async(1)
    TTSendWelcome.perform_async(2)
    TTSendWelcome.perform_async(3)
    assert [j["args"] for j in TTSendWelcome.jobs] == [[1], [2], [3]]
    assert TTSendWelcome.perform_one()["args"] == [1]
    assert TTSendWelcome.drain() == 1 + 1
    TTSendWelcome.perform_async(4)
    TTSendWelcome.clear()
    assert TTSendWelcome.jobs == []


def test_job_function_level_helpers() -> None:
    testing.fake()
    tt_clear_cache.perform_async("a")
    assert isinstance(tt_clear_cache, JobFunction)
    assert [j["args"] for j in tt_clear_cache.jobs] == [["a"]]
    assert tt_clear_cache.drain() == 1
    assert runs == [("tt_clear_cache", ["a"])]


def test_a_drain_after_the_fake_block_keeps_its_jobs_pushes_in_memory(
        no_redis: list[str]) -> None:
    # Before: the drain ran in the mode outside tests, and the jobs its jobs pushed went to
    # Redis (a test's fan-out written to a real queue).
    with testing.fake():
        TTFanOut.perform_async(2)
    assert testing.mode() == "disabled"
    assert testing.drain_all() == 3  # the fan-out, then the two jobs it pushed
    assert no_redis == [] and testing.mode() == "disabled"
    with testing.fake():
        TTChain.perform_async(1)
    assert TTChain.perform_one()["args"] == [1]
    assert TTChain.jobs[0]["args"] == [0]  # its push stayed here too


def test_a_queued_job_for_another_program_stays_queued_and_the_drain_says_what_to_do(
        no_redis: list[str]) -> None:
    # Before: popped, then the lookup failed with a worker's message, and the job was lost.
    from sidequest import enqueue

    with testing.fake():
        enqueue("HardJob", 1, queue="ruby")
        TTRecorder.perform_async("after")
        with pytest.raises(UnknownJobError, match=r"a queued HardJob job cannot run here.*"
                                                  r"testing.clear\('HardJob'\)"):
            testing.drain_all()
        assert [job["args"] for job in testing.jobs_for("HardJob")] == [[1]]
        with pytest.raises(UnknownJobError, match="stays queued"):
            testing.drain("HardJob")
        testing.clear("HardJob")
        assert testing.drain_all() == 1
        assert [payload["args"] for _, payload in recorded] == [["after"]]
