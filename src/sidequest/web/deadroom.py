"""What a Kill costs the dead set. Every move into ``dead`` trims it as Sidekiq does
(``morgue.add_dead``, and the same steps in the move script): entries older than its age
limit go, then all but the newest jobs up to its size limit. The dashboard's Kill uses the
limits the last started worker published (``morgue.limits``; Sidekiq's defaults until one
has). So a Kill on a full dead set silently deletes its oldest jobs; the questions before a
Kill say how many it will delete, from the sizes read when the page is rendered, and the
message after it says how many went.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sidequest import connection, keys, morgue
from sidequest.api.lenient import as_int, replies
from sidequest.morgue import DEAD_MAX_JOBS, DEAD_TIMEOUT
from sidequest.web.render import plural


def keeps(max_jobs: int = DEAD_MAX_JOBS, timeout: float = DEAD_TIMEOUT) -> str:
    """How the dead set's limits read in a sentence: "keeps at most 10,000 jobs, none older
    than 180 days"."""
    return f"keeps at most {plural(max_jobs, 'job')}, none older than {_age(timeout)}"


#: The units an age limit is said in, largest first.
_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def _age(seconds: float) -> str:
    """``400 days``, ``1 day``, ``400.5 days``; ``12 hours`` for a limit under a day (any
    number of seconds is a valid setting)."""
    size, unit = next(((size, unit) for size, unit in _UNITS if seconds >= size), _UNITS[-1])
    count = round(seconds / size, 1)
    shown = f"{count:,.0f}" if count.is_integer() else f"{count:,.1f}"
    return f"{shown} {unit if count == 1 else unit + 's'}"


@dataclass(frozen=True)
class DeadRoom:
    """The dead set as a page found it: its size, how many of its entries are past its age
    limit (the next move into it deletes those whatever else it does), and the limits a Kill
    applies (``morgue.limits``)."""

    size: int
    aged: int
    max_jobs: int = DEAD_MAX_JOBS
    timeout: float = DEAD_TIMEOUT

    @property
    def limits(self) -> str:
        return f"Dead {keeps(self.max_jobs, self.timeout)}"

    def dropped(self, kills: int) -> int:
        """How many entries ``kills`` moves into the set delete: the aged ones, then the
        lowest scores past the cap (the oldest dead jobs, and once those are all gone, the
        jobs killed first)."""
        if kills <= 0:
            return 0
        return self.aged + max(0, self.size - self.aged + kills - self.max_jobs)

    @property
    def room(self) -> int:
        """How many jobs can move in, once the aged entries are gone, before one is deleted
        for want of room."""
        return max(0, self.max_jobs - (self.size - self.aged))

    def kill_note(self, kills: int) -> str:
        """What killing ``kills`` jobs deletes, to follow "They move to Dead."; "" when it
        deletes nothing."""
        lost = self.dropped(kills)
        if not lost:
            return ""
        if lost <= self.size:
            return f" {self.limits}: this deletes the {_oldest(lost)} in Dead."
        return (f" {self.limits}: this deletes all {plural(self.size, 'job')} now in Dead and"
                f" {lost - self.size:,} of the jobs killed.")

    def bulk_note(self, selectable: int) -> str:
        """For "Kill the selected jobs?", whose count the page cannot know: said when
        ticking every row shown (``selectable``) would delete dead jobs."""
        parts = []
        if self.aged:
            parts.append(f"the first job killed deletes the {plural(self.aged, 'job')} in Dead"
                         " past that age")
        if not self.room:
            parts.append("each job killed deletes the oldest job in Dead")
        elif self.room < selectable:
            parts.append(f"it has room for {self.room:,} more; each job killed past that"
                         " deletes the oldest job in Dead")
        return f" {self.limits}: {'; '.join(parts)}." if parts else ""


def _oldest(count: int) -> str:
    return "oldest job" if count == 1 else f"{count:,} oldest jobs"


def read_room() -> DeadRoom:
    """The dead set's size, its limits and its entries past the age limit. Two round trips:
    which entries are too old depends on the limit read first."""
    client = connection.client()
    max_jobs, timeout = morgue.limits(client)
    pipe = client.pipeline(transaction=False)
    pipe.zcard(keys.DEAD)
    # Inclusive, as the trim's ZREMRANGEBYSCORE -inf (now - timeout) is.
    pipe.zcount(keys.DEAD, "-inf", time.time() - timeout)
    size, aged = replies(pipe)  # a key of the wrong type reads as empty
    return DeadRoom(as_int(size), as_int(aged), max_jobs, timeout)


def dead_size() -> int:
    pipe = connection.client().pipeline(transaction=False)
    pipe.zcard(keys.DEAD)
    (size,) = replies(pipe)
    return as_int(size)


def dropped_since(before: int, moved: int) -> int:
    """How many jobs were deleted from Dead by ``moved`` moves into it that found it
    ``before`` jobs big: the moves do not say what they trimmed, so it is measured. A worker
    adding dead jobs meanwhile makes it read lower than what went, someone deleting dead
    jobs meanwhile higher."""
    return max(0, before + moved - dead_size())


def dropped_note(count: int) -> str:
    """The message's part on the dead jobs a Kill deleted; "" for none. It reads the limits
    from Redis when there is something to say: call it off the event loop."""
    if not count:
        return ""
    was = "was" if count == 1 else "were"
    return (f" {plural(count, 'job')} {was} deleted from Dead, which"
            f" {keeps(*morgue.limits(connection.client()))}.")
