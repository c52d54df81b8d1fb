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
