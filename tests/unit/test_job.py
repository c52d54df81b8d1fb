"""sidequest.job: options checked at class definition, payloads, enqueue methods, ``@job``."""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sidequest import Job, JobFunction, items, job, registry
from sidequest.errors import ConfigError, UnknownJobError


class TJWelcome(Job):
    queue = "mailers"
    retry = 5

    def perform(self, user_id: int) -> None:
        pass


class TJPlain(Job):
    def perform(self) -> None:
        pass


class TJFull(Job):
    queue = "reports"
    retry = False
    backtrace = 10
    dead = False
    retry_queue = "reports_retry"
    tags = ("billing", "nightly")
    name = "TJ::FullReport"

    def perform(self) -> None:
        pass


@job
def tj_bare(x: int) -> int:
    """Doubles x."""
    return x * 2


@job(queue="low", retry=3, name="TJ::ClearCache")
def tj_clear_cache(key: str) -> str:
    return f"cleared {key}"



# --- options checked when the class is defined --------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "hint"),
    [
        ("retries", "retry"),
        ("max_retries", "retry"),
        ("queue_name", "queue"),
        ("queu", "queue"),
        ("retyr", "retry"),
        ("tag", "tags"),
        ("backtraces", "backtrace"),
        # Too far from the name for difflib's cutoff, or another system's name for it.
        ("retires", "retry"),
        ("max_retry", "retry"),
        ("unique", "unique_for"),
        ("expiry", "expires_in"),
        ("timeout_seconds", "timeout"),
        ("time_limit", "timeout"),
        ("save_result", "store_result"),
        ("keep_result", "store_result"),
        ("result_expires", "result_ttl"),
    ],
)
def test_a_misspelt_option_fails_at_class_definition(attribute: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown option '{attribute}'; did you mean '{hint}'"):
        type("TJTypo", (Job,), {attribute: 3, "perform": lambda self: None})


def test_an_option_from_elsewhere_says_what_to_do_instead() -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'sidekiq_options'; set one class"
                       r" attribute per option"):
        type("TJSidekiq", (Job,), {"sidekiq_options": {"retry": 3},
                                   "perform": lambda self: None})
    job_class = type("TJDelay", (Job,), {"perform": lambda self: None})
    with pytest.raises(ConfigError, match=r"unknown option 'delay'; push with perform_in"):
        job_class.set(delay=5)  # type: ignore[attr-defined]


def test_a_constant_of_the_class_is_not_taken_for_an_option() -> None:
    job_class = type("TJConstants", (Job,), {"batch_size": 100, "api_url": "https://x",
                                             "perform": lambda self: None})
    assert job_class.batch_size == 100  # type: ignore[attr-defined]


def test_the_error_names_the_class() -> None:
    with pytest.raises(ConfigError, match=r"job class .*test_the_error_names_the_class.*Typo"):

        class Typo(Job):
            retries = 3

            def perform(self) -> None:
                pass


@pytest.mark.parametrize(("attribute", "value", "hint"), [
    ("queue_as", "mailers", "did you mean 'queue'"),  # ActiveJob
    ("rate_limit", "10/m", "limiter"),  # Celery
    ("ignore_result", True, "unless the job sets store_result"),  # Celery: not its opposite
    ("priority", 9, "give urgent jobs a queue of their own"),
    ("retry_backoff", True, "retry_in"),
    ("default_retry_delay", 60, "retry_in"),
    ("retry_on", (ValueError,), "retry_in"),
])
def test_other_systems_option_names_are_refused_with_what_to_do(
        attribute: str, value: object, hint: str) -> None:
    # They used to be taken for constants of the class, and silently did nothing.
    with pytest.raises(ConfigError, match=rf"unknown option '{attribute}'; .*{hint}"):
        type("TJForeign", (Job,), {attribute: value, "perform": lambda self: None})
    with pytest.raises(ConfigError, match=rf"unknown option '{attribute}'"):
        job(**{attribute: value})(lambda: None)


def test_ordinary_class_attributes_and_methods_are_allowed() -> None:
    class TJWithExtras(Job):
        TIMEOUT_SECONDS = 30
        batch_size = 100
        _private = "x"

        def retries(self) -> int:  # a method, not an option
            return 1

        def perform(self) -> None:
            pass

    assert TJWithExtras.wire_name().endswith("TJWithExtras")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("queue", 5),
        ("queue", ""),
        ("queue", "has space"),
        ("queue", "slash/y"),
        ("queue", None),
        ("retry", -1),
        ("retry", "3"),
        ("retry", 1.5),
        ("retry", None),
        ("backtrace", -2),
        ("backtrace", "all"),
        ("dead", 0),
        ("dead", "no"),
        ("tags", "urgent"),
        ("tags", [1, 2]),
        ("tags", None),
        ("retry_queue", "bad queue"),
        ("retry_queue", 3),
        ("name", ""),
        ("name", 7),
    ],
)
def test_an_option_of_the_wrong_type_fails_at_class_definition(option: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"option {option}=.* is invalid; expected"):
        type("TJBadType", (Job,), {option: value, "perform": lambda self: None})


def test_a_unique_for_past_what_a_lock_can_hold_fails_at_class_definition() -> None:
    # Its lock's TTL in milliseconds would overflow Redis's integers at the first push.
    with pytest.raises(ConfigError, match=r"unique_for=1e\+17 is too long; use at most"):
        type("TJForever", (Job,), {"unique_for": 1e17, "perform": lambda self: None})
    type("TJLong", (Job,), {"unique_for": 10 * 365 * 86400, "perform": lambda self: None})


def test_a_queue_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ConfigError):
        type("TJNewline", (Job,), {"queue": "mailers\n", "perform": lambda self: None})


def test_decorator_options_are_checked_when_decorating() -> None:
    with pytest.raises(ConfigError, match=r"@job on .*: unknown option 'retries'; did you mean"):

        @job(retries=3)
        def tj_typo() -> None:
            pass

    with pytest.raises(ConfigError, match="option queue=5 is invalid"):

        @job(queue=5)
        def tj_bad() -> None:
            pass


# --- per-push options -----------------------------------------------------------------------


def test_set_refuses_an_unknown_or_bad_option() -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'retries'; did you mean 'retry'"):
        TJWelcome.set(retries=3)
    with pytest.raises(ConfigError, match="unknown option 'name'"):
        TJWelcome.set(name="Other")  # the wire name is the class's, not the push's
    with pytest.raises(ConfigError, match="option jid='' is invalid"):
        TJWelcome.set(jid="")
    with pytest.raises(ConfigError, match="option wrapped=7 is invalid"):
        TJWelcome.set(wrapped=7)
    with pytest.raises(ConfigError, match="option queue='a b' is invalid"):
        TJWelcome.set(queue="a b")


def test_set_overrides_the_class_options_for_one_push(pushed: list[dict[str, Any]]) -> None:
    TJWelcome.set(queue="critical", retry=False, tags=("vip",), jid="f" * 24,
                  wrapped="app.tasks.report").perform_async(1)
    TJWelcome.perform_async(2)
    first, second = pushed
    assert first["wrapped"] == "app.tasks.report" and "wrapped" not in second
    assert (first["queue"], first["retry"], first["tags"], first["jid"]) == (
        "critical",
        False,
        ["vip"],
        "f" * 24,
    )
    assert (second["queue"], second["retry"], "tags" in second) == ("mailers", 5, False)


# --- wire names and payloads ----------------------------------------------------------------


def test_wire_name_is_module_and_qualname_unless_named() -> None:
    assert TJWelcome.wire_name() == f"{__name__}.TJWelcome"
    assert TJFull.wire_name() == "TJ::FullReport"

    class TJInner(Job):
        def perform(self) -> None:
            pass

    assert TJInner.wire_name() == f"{__name__}.{TJInner.__qualname__}"
    assert "<locals>" in TJInner.wire_name()


def test_payload_base_holds_only_what_differs_from_sidekiqs_defaults() -> None:
    assert TJPlain.payload_base() == {
        "class": f"{__name__}.TJPlain",
        "queue": "default",
        "retry": True,
    }
    assert TJWelcome.payload_base() == {
        "class": f"{__name__}.TJWelcome",
        "queue": "mailers",
        "retry": 5,
    }
    assert TJFull.payload_base() == {
        "class": "TJ::FullReport",
        "queue": "reports",
        "retry": False,
        "backtrace": 10,
        "dead": False,
        "retry_queue": "reports_retry",
        "tags": ["billing", "nightly"],
    }


def test_options_are_inherited() -> None:
    class TJChildOfWelcome(TJWelcome):
        pass

    base = TJChildOfWelcome.payload_base()
    assert (base["queue"], base["retry"]) == ("mailers", 5)
    assert registry.lookup(TJChildOfWelcome.wire_name()) is TJChildOfWelcome


def test_a_subclass_of_a_named_job_gets_its_own_wire_name() -> None:
    class TJNamedChild(TJFull):
        pass

    assert TJNamedChild.wire_name() == f"{__name__}.{TJNamedChild.__qualname__}"


def test_perform_async_pushes_a_normalized_payload(pushed: list[dict[str, Any]]) -> None:
    before = time.time()
    jid = TJWelcome.perform_async(42)
    [payload] = pushed
    assert re.fullmatch(r"[0-9a-f]{24}", jid)
    assert payload["jid"] == jid
    assert payload["args"] == [42]
    assert payload["class"] == f"{__name__}.TJWelcome"
    assert before <= payload["created_at"] <= time.time()
    assert "at" not in payload


def test_perform_bulk_pushes_one_job_per_argument_list(pushed: list[dict[str, Any]]) -> None:
    jids = TJWelcome.perform_bulk([[1], [2], [3]], batch_size=2)
    assert [p["args"] for p in pushed] == [[1], [2], [3]]
    assert [p["jid"] for p in pushed] == jids
    assert len({p["created_at"] for p in pushed}) == 1
    with pytest.raises(TypeError, match="item 1 is tuple"):
        TJWelcome.perform_bulk([[1], (2,)])


def test_a_bulk_push_makes_the_payloads_one_push_at_a_time_would(
    pushed: list[dict[str, Any]],
) -> None:
    # perform_bulk checks the options once and copies the first payload for the others:
    # every key, its value and its place must still be what normalizing each job gives.
    options = {"queue": "mail", "tags": ["a"], "retry": 3, "expires_in": 60.0}
    TJWelcome.set(**options).perform_bulk([[1], [2], [{"k": "v"}]])
    for payload in pushed:
        base = {k: v for k, v in payload.items() if k != "enqueued_at"}
        alone = items.normalize({**TJWelcome.set(**options)._base(), "args": payload["args"]},
                                 payload["created_at"], payload["jid"])
        assert list(base) == list(alone) and base == alone
    assert [p["args"] for p in pushed] == [[1], [2], [{"k": "v"}]]
    assert len({p["jid"] for p in pushed}) == 3


def test_a_bad_argument_late_in_a_bulk_push_names_itself_and_pushes_nothing(
    pushed: list[dict[str, Any]],
) -> None:
    with pytest.raises(TypeError, match=r"job 2 of the 3 .*: args\[0\] is .* of type set"):
        TJWelcome.perform_bulk([[1], [2], [{1, 2}]])
    assert pushed == []


@pytest.mark.parametrize(("args_lists", "problem"), [
    ([[1], [2], [3, 4]], "item 2: .*too many positional arguments"),
    ([[]], "item 0: .*missing a required argument: 'user_id'"),
])
def test_a_bulk_push_perform_cannot_take_is_refused_whole(
    pushed: list[dict[str, Any]], args_lists: list[list[Any]], problem: str,
) -> None:
    # As perform_async refuses it: the worker would fail each such job, and retry it.
    with pytest.raises(TypeError, match=rf"perform_bulk {problem}"):
        TJWelcome.perform_bulk(args_lists)
    with pytest.raises(TypeError, match="cannot take these arguments"):
        tj_clear_cache.perform_bulk([["a"], ["a", "b"]])
    assert pushed == []


def test_a_misspelt_keyword_is_named_not_the_argument_it_left_missing(
    pushed: list[dict[str, Any]],
) -> None:
    # bind() alone said "missing a required argument: 'key'" for k="a" and kee="a".
    with pytest.raises(TypeError, match=r"no parameter named 'kee'; did you mean 'key'\?"):
        tj_clear_cache.perform_async(kee="a")
    with pytest.raises(TypeError, match=r"no parameter named 'user'; did you mean 'user_id'"):
        TJWelcome.perform_async(user=1)
    with pytest.raises(TypeError, match=r"perform\(key\) .*: no parameter named 'k'$"):
        tj_clear_cache.perform_async(k="a")

    @job
    def tj_positional(user_id: int, /) -> None:
        pass

    with pytest.raises(TypeError, match=r"'user_id' is positional-only: pass it without"):
        tj_positional.perform_async(user_id=1)
    assert pushed == []


def test_one_jid_for_a_bulk_push_of_several_jobs_is_refused(
    pushed: list[dict[str, Any]],
) -> None:
    with pytest.raises(ValueError, match="each job needs its own jid"):
        TJWelcome.set(jid="a" * 24).perform_bulk([[1], [2]])
    assert pushed == []
    # One job may carry the jid it was given, as with perform_async.
    assert TJWelcome.set(jid="b" * 24).perform_bulk([[1]]) == ["b" * 24]


def test_non_json_arguments_are_refused_before_the_push(pushed: list[dict[str, Any]]) -> None:
    with pytest.raises(TypeError, match=r"args\[0\] is .* of type datetime"):
        TJWelcome.perform_async(datetime.now(timezone.utc))
    assert pushed == []


# --- scheduling -----------------------------------------------------------------------------


def test_perform_in_and_perform_at_set_at(pushed: list[dict[str, Any]]) -> None:
    before = time.time()
    TJPlain.perform_in(300)
    TJPlain.perform_in(timedelta(hours=1))
    TJPlain.perform_at(before + 7200)
    TJPlain.perform_at(datetime.fromtimestamp(before + 60, timezone.utc))
    TJPlain.perform_at(datetime.fromtimestamp(before + 90))  # naive: local time
    ats = [p["at"] for p in pushed]
    assert before + 300 <= ats[0] <= time.time() + 300
    assert before + 3600 <= ats[1] <= time.time() + 3600
    assert ats[2:] == pytest.approx([before + 7200, before + 60, before + 90])


def test_a_time_in_the_past_runs_now(pushed: list[dict[str, Any]]) -> None:
    TJPlain.perform_in(0)
    TJPlain.perform_in(-10)
    TJPlain.perform_at(time.time() - 5)
    assert ["at" in p for p in pushed] == [False, False, False]


@pytest.mark.parametrize("when", ["soon", None, float("nan"), float("inf"), True, [1]])
def test_a_bad_time_is_a_type_error(when: Any, pushed: list[dict[str, Any]]) -> None:
    with pytest.raises(TypeError, match="expected"):
        TJPlain.perform_in(when)
    with pytest.raises(TypeError, match="expected"):
        TJPlain.perform_at(when)
    assert pushed == []


# --- the registry ---------------------------------------------------------------------------


def test_job_classes_are_registered_by_wire_name() -> None:
    assert registry.lookup(f"{__name__}.TJWelcome") is TJWelcome
    assert registry.lookup("TJ::FullReport") is TJFull
    assert "TJ::FullReport" in registry.names()


class TJRubyStub(Job):
    name = "RubyRecord"
    queue = "ruby"


def test_a_fetched_stub_or_activejob_job_says_what_it_is() -> None:
    # The generic advice (set name = ... on a class) is what a stub has done already, and
    # cannot help an ActiveJob job at all.
    with pytest.raises(UnknownJobError, match=r"'RubyRecord' is a push-only stub in this"
                                              r" process .* a queue = '...' that only"):
        registry.lookup("RubyRecord")
    with pytest.raises(UnknownJobError, match="an ActiveJob job from Rails: these run only"
                                              " in Ruby"):
        registry.lookup(registry.ACTIVE_JOB_WRAPPER)


def test_an_unknown_name_points_at_the_same_class_under_another_module() -> None:
    """Pushed by a process that imported the module by another name (run from inside the
    package): the worker's error names the class it has, and how to push under its name."""
    with pytest.raises(UnknownJobError, match=(
            rf"no job class named 'elsewhere.TJWelcome' is loaded in this process, but"
            rf" '{__name__}.TJWelcome' is: the process that pushed it imported the module as"
            rf" 'elsewhere', this worker as '{__name__}'")):
        registry.lookup("elsewhere.TJWelcome")
    with pytest.raises(UnknownJobError, match=r"sidequest -r yourapp.jobs") as plain:
        registry.lookup("app.jobs.NothingLikeIt")
    assert "but" not in str(plain.value)


def test_a_class_gone_from_a_loaded_module_is_said_to_be_renamed_or_removed() -> None:
    """A rolling deploy renamed the class after older code pushed the job: the module is
    loaded, so 'make sure the worker imports the module' was the wrong advice."""
    with pytest.raises(UnknownJobError) as gone:
        registry.lookup(f"{__name__}.TJWelcomeOld")
    said = str(gone.value)
    assert said.startswith(f"the module '{__name__}' is loaded but defines no job"
                           " 'TJWelcomeOld'"), said
    assert f"did you mean '{__name__}.TJWelcome'? If a deploy renamed or removed" in said, said
    assert f"set name = '{__name__}.TJWelcomeOld' on its replacement" in said
    assert "sidequest -r" not in said


def plain_helper(n: int) -> int:
    """Not a job: no @job on it."""
    return n


def test_a_plain_function_pushed_by_its_path_says_to_decorate_it() -> None:
    # RQ enqueues any function by its path; here the worker can run only jobs.
    with pytest.raises(UnknownJobError, match=(
            rf"'{__name__}.plain_helper' is a plain function, not a job: decorate it with"
            r" @job \(from sidequest import job\)")):
        registry.lookup(f"{__name__}.plain_helper")


def test_a_class_without_perform_is_not_registered() -> None:
    class TJAbstractBase(Job):
        queue = "abstract"

    with pytest.raises(UnknownJobError, match="TJAbstractBase"):
        registry.lookup(TJAbstractBase.wire_name())


def test_two_different_classes_with_one_name_are_refused() -> None:
    class TJFirst(Job):
        name = "TJ::Duplicate"

        def perform(self) -> None:
            pass

    with pytest.raises(ConfigError, match=r"two job classes share the name 'TJ::Duplicate'"):

        class TJSecond(Job):
            name = "TJ::Duplicate"

            def perform(self) -> None:
                pass

    assert registry.lookup("TJ::Duplicate") is TJFirst


def test_redefining_the_same_class_replaces_it() -> None:
    # A module imported twice (reload, two test runs) defines "the same" class again.
    def define() -> type[Job]:
        class TJReloaded(Job):
            def perform(self) -> None:
                pass

        return TJReloaded

    first, second = define(), define()
    assert first is not second
    assert registry.lookup(second.wire_name()) is second


# --- @job -----------------------------------------------------------------------------------


def test_calling_a_job_function_runs_it_directly(pushed: list[dict[str, Any]]) -> None:
    assert tj_bare(21) == 42
    assert tj_clear_cache("home") == "cleared home"
    # perform runs it now too, as SendWelcome().perform(42) does for a class.
    assert tj_clear_cache.perform("home") == "cleared home"
    assert tj_clear_cache.perform(key="away") == "cleared away"
    assert pushed == []


def test_a_job_function_keeps_the_function_metadata() -> None:
    assert isinstance(tj_bare, JobFunction)
    assert tj_bare.__name__ == "tj_bare"
    assert tj_bare.__doc__ == "Doubles x."
    assert tj_bare.__wrapped__(1) == 2


def test_job_function_wire_names_and_options() -> None:
    assert tj_bare.job_class.wire_name() == f"{__name__}.tj_bare"
    assert tj_clear_cache.job_class.wire_name() == "TJ::ClearCache"
    assert tj_clear_cache.payload_base() == {
        "class": "TJ::ClearCache",
        "queue": "low",
        "retry": 3,
    }
    assert tj_clear_cache.queue == "low"  # class attributes are reachable through it
    assert registry.lookup("TJ::ClearCache") is tj_clear_cache.job_class


def test_a_worker_runs_the_function_through_its_class() -> None:
    calls: list[str] = []

    @job
    def tj_record(value: str) -> None:
        calls.append(value)

    instance = registry.lookup(tj_record.job_class.wire_name())()
    instance.perform("ran")
    assert calls == ["ran"]


def test_job_functions_enqueue_like_classes(pushed: list[dict[str, Any]]) -> None:
    jid = tj_clear_cache.perform_async("home")
    tj_clear_cache.perform_in(60, "later")
    tj_clear_cache.set(queue="critical").perform_async("now")
    tj_clear_cache.perform_bulk([["a"], ["b"]])
    assert pushed[0]["jid"] == jid
    assert [(p["queue"], p["args"], "at" in p) for p in pushed] == [
        ("low", ["home"], False),
        ("low", ["later"], True),
        ("critical", ["now"], False),
        ("low", ["a"], False),
        ("low", ["b"], False),
    ]


class TJKeepsNothing(Job):
    result_ttl = 60  # without store_result: nothing is kept

    def perform(self) -> None:
        pass


class TJUniqueUntilOnly(Job):
    unique_until = "start"  # without unique_for: no lock is taken

    def perform(self) -> None:
        pass


def test_an_option_that_does_nothing_without_another_is_pointed_out_once(
    pushed: list[dict[str, Any]], caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="sidequest"):
        TJKeepsNothing.perform_async()
        TJKeepsNothing.perform_async()
        TJUniqueUntilOnly.perform_async()
        TJKeepsNothing.set(store_result=True).perform_async()  # both: nothing to say
    name = f"{__name__}.TJKeepsNothing"
    assert caplog.messages == [
        f"{name}: result_ttl does nothing without store_result; set store_result = True,"
        " or drop result_ttl",
        f"{__name__}.TJUniqueUntilOnly: unique_until does nothing without unique_for; set"
        " unique_for = <seconds>, or drop unique_until",
    ]
    assert len(pushed) == 4, "a warning, not a refusal"


@pytest.mark.parametrize(("call", "hint"), [
    ("delay", r"push with perform_async\(\.\.\.\) \(Celery's delay\)"),
    ("apply_async", r"perform_in\(seconds, \.\.\.\) for a countdown"),
    ("send", "Dramatiq's send"),
])
def test_another_systems_push_names_the_call_to_make(call: str, hint: str) -> None:
    @job
    def tj_foreign(n: int) -> None:
        pass

    class TJForeignCls(Job):
        def perform(self, n: int) -> None:
            pass

    for target in (TJForeignCls, tj_foreign):
        with pytest.raises(AttributeError, match=rf"has no attribute '{call}'; .*{hint}"):
            getattr(target, call)(1)
    assert not hasattr(TJForeignCls, "delay")  # code that sniffs for Celery tasks sees none
    with pytest.raises(AttributeError, match=r"has no attribute 'nope'$"):
        TJForeignCls.nope  # type: ignore[attr-defined]  # noqa: B018


def test_those_names_can_still_be_set_and_patched_on_a_job_class() -> None:
    # A class's own attribute wins, and setting one works as on any class (mock.patch,
    # monkeypatch, a shim that maps delay to perform_async).
    from unittest import mock

    class TJPatched(Job):
        def perform(self) -> None:
            pass

        def enqueue(self) -> str:
            return "its own"

    assert TJPatched().enqueue() == "its own"
    with mock.patch.object(TJPatched, "enqueue", lambda self: "patched"):
        assert TJPatched().enqueue() == "patched"
    with mock.patch.object(TJPatched, "delay", create=True) as delay:
        TJPatched.delay(1)  # type: ignore[attr-defined]
    delay.assert_called_once_with(1)
    assert not hasattr(TJPatched, "delay")


def test_naming_an_unknown_job_runs_no_module_getattr(monkeypatch: pytest.MonkeyPatch) -> None:
    # A payload's class names a module's attribute: looking it up must not run the module's
    # own __getattr__ (lazy exports import things), only read what it defines.
    import types

    called: list[str] = []
    lazy = types.ModuleType("tj_lazy_module")
    lazy.__getattr__ = called.append  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "tj_lazy_module", lazy)
    with pytest.raises(UnknownJobError):
        registry.lookup("tj_lazy_module.Heavy")
    assert called == []
