"""When a periodic job's next tick falls: cron expressions in a time zone, or every N seconds.

Pure: no Redis, no clock of its own. Every function takes the instant to start from (epoch
seconds) and returns a tick as whole epoch seconds, so that every process computes the same
ticks from the same schedule whatever its own clock says: a tick is named by its scheduled
time, never by the time a process noticed it.

Cron expressions are parsed by cronsim (five fields, or six with seconds first). Daylight
saving follows Debian's cron, for five- and six-field expressions alike: a job at a fixed time
(minute and hour fields not starting with ``*``) runs once on the day the clocks jump forward
(at the first instant after the gap when its time does not exist) and once on the day they
fall back (at the first of the two instants); a job that runs more often than hourly follows
real time and so runs 0 or 2 times in the skipped or repeated hour, as cron's does.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from sidequest.errors import ConfigError

UTC = timezone.utc
CRON_HELP = ("write five fields 'minute hour day-of-month month day-of-week' "
             "(e.g. '0 3 * * *' for 03:00 daily), or six with seconds first "
             "(e.g. '*/10 * * * * *' for every 10 seconds), or @hourly, @daily, @weekly, "
             "@monthly or @yearly")
#: crontab's nicknames, as cron(8) reads them (cronsim takes fields only).
NICKNAMES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
             "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
             "@hourly": "0 * * * *"}


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone ``name`` (None: UTC), or a ConfigError saying what to write."""
    if name is None:
        return ZoneInfo("UTC")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"tz must be an IANA time zone name such as 'Europe/Paris' or "
                          f"'UTC', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}: {_zone_hint(name)}") from None


def _zone_hint(name: str) -> str:
    """The zone meant, when the name differs only in case ('utc', 'europe/paris') or is
    close to one; else what a name looks like."""
    known = available_timezones()
    same = sorted(zone for zone in known if zone.lower() == name.strip().lower())
    if same:
        return f"did you mean {same[0]!r}? (names are case-sensitive)"
    close = difflib.get_close_matches(name, known, 1, 0.8)
    if close:
        return f"did you mean {close[0]!r}?"
    return "use an IANA name such as 'Europe/Paris', 'America/New_York' or 'UTC'"


@dataclass(frozen=True)
class Cron:
    """A cron expression evaluated in the time zone ``tz``."""

    expression: str
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    def __post_init__(self) -> None:
        if not isinstance(self.expression, str):
            raise ConfigError(f"cron must be a string, got {self.expression!r}; {CRON_HELP}")
        fields = self.spec.split()
        if self.expression.strip().startswith("@") and self.spec == self.expression:
            raise ConfigError(f"cron {self.expression!r} is no nickname Sidequest knows;"
                              f" {CRON_HELP}")
        if len(fields) not in (5, 6):
            raise ConfigError(f"cron {self.expression!r} has {len(fields)} fields; {CRON_HELP}")
        try:
            simulator = CronSim(self.spec, datetime(2000, 1, 1))
            next(simulator)
        except CronSimError as exc:
            if _days_never_in_months(fields[-5:]):
                raise ConfigError(f"cron {self.expression!r} never matches a date: no month"
                                  f" it names has the days it names (the 30th of February,"
                                  f" say); check its day and month fields") from None
            raise ConfigError(f"cron {self.expression!r}: {str(exc).lower()} field"
                              f"{_other_dialect(fields)}; {CRON_HELP}") from None
        except StopIteration:
            raise ConfigError(f"cron {self.expression!r} never matches a date (within 50 "
                              f"years); check its day and month fields") from None

    @property
    def spec(self) -> str:
        """The expression in fields: a nickname (@daily) spelt out."""
        return NICKNAMES.get(self.expression.strip().lower(), self.expression)

    @property
    def fields(self) -> list[str]:
        parts = self.spec.split()
        return parts if len(parts) == 6 else ["0", *parts]

    @property
    def wall_clock(self) -> bool:
        """Fixed-time jobs are scheduled on the local wall clock and moved out of a DST gap;
        the rest follow real time (Debian cron's rule)."""
        _, minute, hour, *_ = self.fields
        return not minute.startswith("*") and not hour.startswith("*")

    def next_after(self, epoch: float) -> int:
        """The first tick strictly after ``epoch``."""
        start = math.floor(epoch)
        after = datetime.fromtimestamp(start, self.tz)
        if not self.wall_clock:
            return int(next(CronSim(self.spec, after)).timestamp())
        for candidate in CronSim(self.spec, after.replace(tzinfo=None)):
            tick = int(_resolve(candidate, self.tz).timestamp())
            if tick > start:  # a naive start forgets which of two repeated hours it was
                return tick
        raise StopIteration  # pragma: no cover - cronsim ends its iteration itself

    def describe(self) -> str:
        return _tidy(CronSim(self.spec, datetime(2000, 1, 1)).explain())


def _tidy(text: str) -> str:
    """cronsim's English, mended where it misleads: ordinals ("21th", "31th"), a day of the
    month and a day of the week, which cron takes as either ("and on Monday": or), and its
    "Every second second" for */2 seconds."""
    text = re.sub(r"\b(\d+)th\b", lambda m: _ordinal(int(m[1])), text)
    text = text.replace("day of month and on", "day of month, or on")
    return text.replace("Every second second", "Every 2nd second")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _resolve(local: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in ``tz``: in a gap (clocks jumped forward), the first minute after
    it; when repeated (clocks fell back), the first of the two."""
    while True:
        aware = local.replace(tzinfo=tz, fold=0)
        if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == local:
            return aware
        local += timedelta(minutes=1)


@dataclass(frozen=True)
class Every:
    """Every ``seconds`` seconds, on multiples of it since the epoch: every process agrees on
    the ticks without talking to the others."""

    seconds: int

    def __post_init__(self) -> None:
        value = self.seconds
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 366 * 86400:
            raise ConfigError(f"every must be a whole number of seconds from 1 to a year "
                              f"(31622400), got {value!r}; use cron for calendar schedules")

    def next_after(self, epoch: float) -> int:
        return (math.floor(epoch) // self.seconds + 1) * self.seconds

    def describe(self) -> str:
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if self.seconds % size == 0:
                count = self.seconds // size
                return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
        return "Every second" if self.seconds == 1 else f"Every {self.seconds} seconds"


Schedule = Cron | Every


#: Days in each month, February at its longest.
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _other_dialect(fields: list[str]) -> str:
    """What a Quartz (Java, Spring) expression does here: a year as its last field, or a
    '?' for "no specific day"."""
    if len(fields) == 6 and fields[-1].isdigit() and len(fields[-1]) == 4:
        return (f" (six fields are read with seconds first: {fields[-1]!r} is no"
                " day-of-week; a year field is not taken)")
    if "?" in fields:
        return " ('?' is Quartz's: write '*' for any day)"
    return ""


def _days_never_in_months(fields: list[str]) -> bool:
    """Plain day and month numbers (``30 2``, ``31 4,6``), each valid alone, that never meet:
    the parser calls that a bad day-of-month, which reads as a typo."""
    days, months = fields[2].split(","), fields[3].split(",")
    if not all(d.isdigit() and 1 <= int(d) <= 31 for d in days):
        return False
    if not all(m.isdigit() and 1 <= int(m) <= 12 for m in months):
        return False
    return min(int(d) for d in days) > max(_MONTH_DAYS[int(m) - 1] for m in months)
