"""url_problems.readable: a Redis Cluster slot moving, as redis-py words it (a bare "<slot>
<host>:<port>" with its MOVED dropped, a pipeline's "caused error: ..." ending so, "TTL
exhausted" after too many redirects), is said to be a slot moving, retried: worker warnings
during a reshard or a failover named nothing an operator could read."""

from __future__ import annotations

import redis.exceptions as errors

from sidequest.url_problems import readable

MOVING = "a Redis Cluster slot moved or is being migrated"


def test_a_moving_slot_is_said_to_be_one() -> None:
    for exc in (errors.MovedError("13244 127.0.0.1:7441"),
                errors.AskError("13244 127.0.0.1:7442"),
                errors.ClusterError("TTL exhausted."),
                errors.ResponseError("Command # 1 (LREM {sq}sq:inprogress:vm -1 x) of pipeline"
                                     " caused error: 13244 127.0.0.1:7441")):
        said = readable(exc)
        assert said.startswith(str(exc).rstrip(". ")) and MOVING in said, said


def test_other_errors_keep_their_text() -> None:
    for exc in (errors.ResponseError("WRONGTYPE Operation against a key"),
                errors.ConnectionError("Error 111 connecting to 127.0.0.1:7441."),
                errors.ClusterError("Redis Cluster cannot be connected")):
        assert readable(exc) == str(exc)
