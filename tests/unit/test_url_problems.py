"""url_problems.readable: a Redis Cluster slot moving, as redis-py words it (a bare "<slot>
<host>:<port>" with its MOVED dropped, a pipeline's "caused error: ..." ending so, "TTL
exhausted" after too many redirects), is said to be a slot moving, retried: worker warnings
during a reshard or a failover named nothing an operator could read."""

from __future__ import annotations

import redis.exceptions as errors

from sidequest.url_problems import readable, refused_for_now

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


def test_a_scripts_write_refused_for_now_is_read_as_such() -> None:
    # Redis 6.2 wraps the refusal of a write inside a script in the script's error.
    wrapped = errors.ResponseError("Error running script (call to f_0123): @user_script:1:"
                            " @user_script: 1: -NOREPLICAS Not enough good replicas to write.")
    assert refused_for_now(wrapped)
    assert refused_for_now(errors.ResponseError("NOREPLICAS Not enough good replicas to write."))
    assert not refused_for_now(errors.ResponseError("ERR unknown command 'FOO'"))
