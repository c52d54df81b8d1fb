"""sidequest.periodic() and [[periodic]] tables: what an entry holds and the errors a bad one
gets, before any worker runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import sidequest
from sidequest import periodic_jobs
from sidequest.config import build
from sidequest.cron import Cron, Every
from sidequest.errors import ConfigError


class Report(sidequest.Job):
    queue = "reports"
    retry = 3

    def perform(self, days: int, fmt: str = "pdf") -> None:
        pass


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    periodic_jobs.clear()
    yield
    periodic_jobs.clear()


def test_an_entry_takes_the_class_name_and_options() -> None:
    entry = sidequest.periodic(Report, cron="0 3 * * *", args=[7], tz="Europe/Paris")
    assert entry.name == Report.wire_name() and entry.queue == "reports"
    assert isinstance(entry.schedule, Cron) and entry.schedule_text == "0 3 * * *"
    base = entry.payload_base()
    assert base == {"class": Report.wire_name(), "queue": "reports", "retry": 3, "args": [7],
                    "periodic": entry.name}
    assert periodic_jobs.entries() == [entry]
    assert entry.definition() == {"name": entry.name, "class": Report.wire_name(),
                                  "cron": "0 3 * * *", "args": [7], "tz": "Europe/Paris",
                                  "queue": "reports", "catch_up": False,
                                  "options": {"retry": 3}, "source": f"module {__name__}"}


def test_every_and_a_job_known_only_by_name() -> None:
    entry = sidequest.periodic("RubyCleanup", every=30, name="cleanup", queue="low")
    assert isinstance(entry.schedule, Every) and entry.schedule_text == "every 30s"
    assert entry.payload_base() == {"class": "RubyCleanup", "retry": True, "queue": "low",
                                    "args": [], "periodic": "cleanup"}


def test_every_takes_a_timedelta_or_a_whole_float_as_a_timeout_does() -> None:
    from datetime import timedelta

    minute = sidequest.periodic("RubyCleanup", every=timedelta(minutes=1), name="m")
    half = sidequest.periodic("RubyCleanup", every=30.0, name="h")
    assert minute.schedule == Every(60) and half.schedule == Every(30)
    with pytest.raises(ConfigError, match=r"every must be a whole number .*got 1\.5"):
        sidequest.periodic("RubyCleanup", every=timedelta(seconds=1.5), name="x")


def test_registering_the_same_entry_twice_is_harmless_but_a_different_one_is_not() -> None:
    sidequest.periodic(Report, every=60, args=[1], name="r")
    sidequest.periodic(Report, every=60, args=[1], name="r")
    with pytest.raises(ConfigError, match="'r' is defined twice, differently"):
        sidequest.periodic(Report, every=120, args=[1], name="r")
    assert len(periodic_jobs.entries()) == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one of cron="),
    ({"cron": "* * * * *", "every": 5}, "exactly one of cron="),
    ({"cron": "61 3 * * *"}, "bad minute field"),
    ({"cron": "0 3 * * *", "tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"cron": "0 3 * * *", "tz": "utc"}, r"'utc': did you mean 'UTC'\? \(names are case"),
    ({"cron": "0 3 * * *", "tz": "Europe/Pariss"}, r"did you mean 'Europe/Paris'\?$"),
    ({"every": 10, "tz": "Europe/Paris"}, "tz applies to cron"),
    ({"every": 0}, "every must be a whole number"),
    ({"every": 5, "args": [object()]}, "JSON"),
    ({"every": 5, "args": [1, 2, 3]}, "periodic entry .*: .*cannot take these arguments"),
    ({"every": 5, "args": [1], "queue": "bad queue"}, "queue 'bad queue'"),
    ({"every": 5, "args": [1], "name": "has space"}, "name 'has space'"),
    ({"every": 5, "args": [1], "catch_up": "yes"}, "catch_up must be true or false"),
])
def test_bad_definitions_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ConfigError, TypeError), match=message):
        sidequest.periodic(Report, **kwargs)  # type: ignore[arg-type]
    assert periodic_jobs.entries() == []


def test_toml_tables(tmp_path: Path) -> None:
    path = tmp_path / "sidequest.toml"
    path.write_text('[[periodic]]\nname = "nightly"\nclass = "app.jobs.Nightly"\n'
                    'cron = "0 3 * * *"\ntz = "Europe/Paris"\nargs = [7]\n\n'
                    '[[periodic]]\nname = "ping"\nclass = "app.jobs.Ping"\nevery = 30\n'
                    'catch_up = true\n')
    config = build(str(path))
    entries = [periodic_jobs.from_table(t, "x") for t in config.periodic]
    assert [(e.name, e.schedule_text, e.tz, e.catch_up) for e in entries] == [
        ("nightly", "0 3 * * *", "Europe/Paris", False), ("ping", "every 30s", None, True)]


@pytest.mark.parametrize(("body", "message"), [
    ('name = "x"\nclass = "A"\ncron = "0 3 * *"\n', "has 4 fields"),
    ('name = "x"\ncron = "0 3 * * *"\n', "needs class ="),
    ('name = "x"\nclass = "A"\nevery = 5\nevry = 3\n', r"unknown key.*every for evry"),
    ('name = "x"\nclass = "A"\ncron = "0 3 * * *"\ntimezone = "UTC"\n',
     r"unknown key\(s\) timezone \(did you mean tz for timezone\?\)"),
    ('name = "x"\nclass = "A"\ncron = "0 3 * * *"\ntz = "Paris"\n', "unknown time zone"),
])
def test_bad_toml_tables_name_the_file(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[periodic]]\n" + body)
    with pytest.raises(ConfigError, match=message) as info:
        build(str(path))
    assert str(path) in str(info.value)


class Refresh(sidequest.Job):
    unique_for = 600

    @staticmethod
    def unique_key(account: int, reason: str = "") -> int:
        return account  # the reason does not make another job

    def perform(self, account: int, reason: str = "") -> None:
        pass


def test_a_tick_is_identified_as_perform_async_identifies_the_job(
        fake_without_redis: None) -> None:
    # One lock for a tick and a push from code: they never run side by side.
    entry = sidequest.periodic(Refresh, every=60, args=[7, "tick"])
    sidequest.testing.clear_all()
    Refresh.perform_async(7, "from code")
    (pushed,) = Refresh.jobs
    assert entry.payload_base()["unique_digest"] == pushed["unique_digest"]


class OnCommit(sidequest.Job):
    unique_for = 600
    enqueue_on_commit = True

    def perform(self, account: int) -> None:
        pass


def test_a_stored_definition_keeps_options_a_dashboard_push_can_use() -> None:
    # enqueue_on_commit needs a database transaction, which a dashboard has none of; the
    # digest is worked out again at each push.
    options = sidequest.periodic(OnCommit, every=60, args=[7]).definition()["options"]
    assert options == {"retry": True, "unique_for": 600}


def test_an_entry_knows_where_it_is_defined() -> None:
    """A worker removes only what its own modules and files dropped (worker/periodic.sync)."""
    table = {"name": "nightly", "class": "RubyCleanup", "every": 60}
    assert periodic_jobs.from_table(table, "./pool_a.toml").source == "file ./pool_a.toml"
    assert sidequest.periodic("RubyCleanup", every=60, name="n").source == f"module {__name__}"
