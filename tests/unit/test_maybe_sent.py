"""Whether a failed push may have reached Redis (its error then says to check for the job)
or surely did not (retry later): a timeout before any connection was made sent nothing."""

from __future__ import annotations

import redis

from sidequest.wire import NotSent, ReplyLost, maybe_sent


def _wrapped(cause: BaseException) -> redis.ConnectionError:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise redis.ConnectionError("Error while connecting") from inner
    except redis.ConnectionError as outer:
        return outer


def test_a_reply_that_never_came_may_have_been_sent() -> None:
    assert maybe_sent(redis.TimeoutError("Timeout reading from socket"))
    assert maybe_sent(_wrapped(ReplyLost("connection dropped")))


def test_a_connection_never_made_sent_nothing() -> None:
    assert not maybe_sent(redis.TimeoutError("Timeout connecting to server"))
    assert not maybe_sent(_wrapped(NotSent("refused")))
    # A rediss:// URL at a server that speaks no TLS: the handshake times out.
    assert not maybe_sent(_wrapped(TimeoutError("_ssl.c:989: The handshake operation timed out")))
