"""registry.near_miss: a slip in a job name this process could check is named; a name it
cannot judge (another process's job, a nested class) is left alone."""

from __future__ import annotations

import pytest

from sidequest import Job, registry
from sidequest.errors import UnknownJobError


class NMOuter:
    class NMInner(Job):
        def perform(self) -> None:
            pass


class NMSync(Job):
    def perform(self) -> None:
        pass


def test_a_slip_in_the_module_part_is_named() -> None:
    slip = f"{__name__}s.NMSync"  # no such module, and a loaded job of almost that name
    assert registry.near_miss(slip) == (
        f"no module '{__name__}s' exists where this process looks, and '{__name__}.NMSync' is"
        f" a job loaded here; did you mean '{__name__}.NMSync'?")


def test_a_nested_class_name_is_not_taken_for_a_module() -> None:
    # The part before the last dot is a class of a loaded plain module, not a module.
    assert registry.near_miss(f"{__name__}.NMOuter.NMInnr") is None


def test_names_this_process_cannot_judge_are_left_alone() -> None:
    assert registry.near_miss("Reports::Daily") is None
    assert registry.near_miss("otherservice.jobs.Export") is None


def test_a_class_s_bare_name_points_at_its_full_one_when_fetched() -> None:
    """A job pushed as "NMSync" (a [[periodic]] entry's class = "NMSync") failed in the
    worker saying the pushing process had imported a module named 'NMSync'. Elsewhere a bare
    name may be a Ruby class's, even one a job here shares: left alone."""
    says = (f"no job is named 'NMSync', but '{__name__}.NMSync' is loaded here (a job's name"
            f" includes its module, unless its class sets name = '...'); did you mean"
            f" '{__name__}.NMSync'?")
    with pytest.raises(UnknownJobError) as failed:
        registry.lookup("NMSync")
    assert str(failed.value).startswith(says) and "imported the module" not in str(failed.value)
    assert registry.near_miss("NMSync") is None
    assert registry.bare_name("HardWorker") is None


class NMRubyStub(Job):
    name = f"{__name__}.NMRuby"  # a push-only stub: another process's job, declared so


def test_a_declared_stub_is_no_slip() -> None:
    """Its name points into this loaded module, which defines no such job: a slip, but for
    the stub that says another process runs it."""
    assert registry.near_miss(f"{__name__}.NMRuby") is None
