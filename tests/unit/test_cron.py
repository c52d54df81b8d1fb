"""Next-tick computation against known calendars: daylight-saving days in Paris and New York
(2026: Europe springs forward on 29 March and falls back on 25 October; the US on 8 March and
1 November), six-field seconds, every=N, and the errors a bad schedule gets."""

from __future__ import annotations

from datetime import datetime

import pytest

from sidequest.cron import Cron, Every, zone
from sidequest.errors import ConfigError


def ticks(expression: str, tz: str, start: tuple[int, ...], end: tuple[int, ...]) -> list[str]:
    """Every tick in (start, end], as local ISO times with their UTC offset."""
    schedule, where = Cron(expression, zone(tz)), zone(tz)
    t = datetime(*start, tzinfo=where).timestamp()
    stop = datetime(*end, tzinfo=where).timestamp()
    out = []
    while (t := schedule.next_after(t)) <= stop:
        out.append(datetime.fromtimestamp(t, where).isoformat())
    return out


@pytest.mark.parametrize("expression", ["30 2 * * *", "0 30 2 * * *"])
def test_paris_spring_forward_runs_a_0230_job_once(expression: str) -> None:
    # 02:00 -> 03:00 on 29 March: 02:30 does not exist; the job runs once, right after the gap.
    assert ticks(expression, "Europe/Paris", (2026, 3, 28, 12), (2026, 3, 30, 12)) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


@pytest.mark.parametrize("expression", ["30 2 * * *", "0 30 2 * * *"])
def test_paris_fall_back_runs_a_0230_job_once(expression: str) -> None:
    # 03:00 -> 02:00 on 25 October: 02:30 happens twice; the job runs at the first.
    assert ticks(expression, "Europe/Paris", (2026, 10, 24, 12), (2026, 10, 26, 12)) == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_new_york_spring_forward_and_fall_back() -> None:
    assert ticks("30 2 * * *", "America/New_York", (2026, 3, 7, 12), (2026, 3, 9, 12)) == [
        "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    assert ticks("30 1 * * *", "America/New_York", (2026, 10, 31, 12), (2026, 11, 2, 12)) == [
        "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]


def test_frequent_jobs_follow_real_time_through_the_repeated_hour() -> None:
    # Every 30 minutes is not a fixed-time job: the repeated hour has its own two ticks.
    assert ticks("*/30 * * * *", "America/New_York", (2026, 11, 1, 0, 50),
                 (2026, 11, 1, 2, 10)) == [
        "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:00:00-05:00"]


def test_a_tick_after_the_second_pass_of_a_repeated_hour_is_the_next_day() -> None:
    where = zone("Europe/Paris")
    second_pass = datetime(2026, 10, 25, 2, 40, tzinfo=where, fold=1).timestamp()
    tick = Cron("30 2 * * *", where).next_after(second_pass)
    assert datetime.fromtimestamp(tick, where).isoformat() == "2026-10-26T02:30:00+01:00"


def test_time_zone_shifts_a_daily_job() -> None:
    utc = datetime(2026, 6, 1, tzinfo=zone("UTC")).timestamp()
    paris = Cron("0 3 * * *", zone("Europe/Paris")).next_after(utc)
    assert paris == datetime(2026, 6, 1, 1, 0, tzinfo=zone("UTC")).timestamp()  # CEST = +2
    assert Cron("0 3 * * *").next_after(utc) == utc + 3 * 3600


def test_six_fields_put_seconds_first() -> None:
    start = datetime(2026, 1, 1, tzinfo=zone("UTC")).timestamp()
    schedule = Cron("*/10 * * * * *")
    first = schedule.next_after(start)
    assert [first - start, schedule.next_after(first) - first] == [10, 10]
    assert Cron("* * * * * *").next_after(start + 0.5) == start + 1


def test_ticks_are_strictly_after_the_start_and_whole_seconds() -> None:
    assert Every(1).next_after(100.0) == 101
    assert Every(1).next_after(100.9) == 101
    assert Every(30).next_after(59.99) == 60
    assert Every(30).next_after(60) == 90


def test_descriptions() -> None:
    assert Cron("0 9 * * MON-FRI").describe() == "At 09:00 on Monday through Friday"
    assert Cron("*/10 * * * * *").describe() == "Every 10th second of every minute"
    # Mended from cronsim's words: ordinals, either day (cron's rule), */2 seconds.
    assert Cron("0 0 1,21,22,23,31 * *").describe() == (
        "At 00:00 on the first, the 21st, the 22nd, the 23rd, and the 31st day of month")
    assert Cron("0 0 11,12,13 * *").describe() == (
        "At 00:00 on the 11th, the 12th, and the 13th day of month")
    assert Cron("0 0 13 * 5").describe() == "At 00:00 on the 13th day of month, or on Friday"
    assert Cron("*/2 * * * * *").describe() == "Every 2nd second of every minute"
    assert [Every(n).describe() for n in (1, 45, 120, 3600, 86400 * 2)] == [
        "Every second", "Every 45 seconds", "Every 2 minutes", "Every hour", "Every 2 days"]


@pytest.mark.parametrize(("nickname", "fields"), [
    ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"), ("@Daily", "0 0 * * *")])
def test_crontab_nicknames_tick_as_their_fields(nickname: str, fields: str) -> None:
    start = datetime(2026, 3, 14, 15, 9, 26, tzinfo=zone("Europe/Paris")).timestamp()
    by_name, by_fields = Cron(nickname, zone("Europe/Paris")), Cron(fields, zone("Europe/Paris"))
    assert by_name.next_after(start) == by_fields.next_after(start)
    assert by_name.describe() == by_fields.describe() and by_name.expression == nickname


@pytest.mark.parametrize(("expression", "message"), [
    ("@reboot", "'@reboot' is no nickname Sidequest knows"),
    ("* * *", "has 3 fields"),
    ("61 * * * *", "bad minute field"),
    ("0 25 * * *", "bad hour field"),
    ("0 0 32 * *", "bad day-of-month field"),
    ("0 0 * 13 *", "bad month field"),
    ("1 2 3 4 5 6 7", "has 7 fields"),
    # Quartz's (Java, Spring): a year last, '?' for any day
    ("0 3 * * * 2026", "bad day-of-week field .six fields are read with seconds first: '2026'"
                       " is no day-of-week; a year field is not taken"),
    ("0 0 12 ? * MON", r"bad day-of-month field \('\?' is Quartz's: write '\*' for any day"),
])
def test_bad_expressions_say_which_field(expression: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Cron(expression)
    assert "five fields" in str(info.value)


def test_bad_time_zones_and_intervals() -> None:
    with pytest.raises(ConfigError,
                       match=r"unknown time zone 'Europe/Pari': did you mean 'Europe/Paris'"):
        zone("Europe/Pari")
    with pytest.raises(ConfigError, match=r"unknown time zone 'Mars/Olympus': use an IANA"):
        zone("Mars/Olympus")
    for value in (0, -5, 1.5, True, "30"):
        with pytest.raises(ConfigError, match="every must be a whole number"):
            Every(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4,6 *", "0 0 0 30 2 *"])
def test_days_no_named_month_has_are_said_to_never_match(expression: str) -> None:
    # The parser calls these a bad day-of-month field, which reads as a typo in the day.
    with pytest.raises(ConfigError, match="never matches a date: no month it names has"):
        Cron(expression)
