"""Text from Redis as a terminal or a log line shows it: another program (or a hostile
producer) controls queue names, class names and identities, and a control character among
them would act on the reader's terminal (clear a line, set the window title, write the
clipboard) or forge a log line with a newline. Such characters are written out instead."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with each character that is not printable written as its escape (``\\x1b``,
    ``\\n``, ``\\u202e``); printable text, the common case, is returned as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


#: Bits of an integer written out as itself; past them (some 4,000 digits), a note of its
#: size: Python refuses to write integers of over 4,300 digits unless the whole process lifts
#: that limit, which a page (perhaps of a dashboard mounted in an application) cannot do.
SHOWN_INT_BITS = 13_000


def huge_int(value: object) -> str | None:
    """The note shown for an integer too long to write out (a payload may hold one: Ruby
    writes any); None for any other value."""
    if isinstance(value, int) and not isinstance(value, bool) and (
            value.bit_length() > SHOWN_INT_BITS):
        return f"<an integer of about {int(value.bit_length() * 0.30103):,} digits>"
    return None
