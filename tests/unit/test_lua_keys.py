"""Every Lua script names every key it touches in KEYS, never builds one inside the script.

Redis Cluster and servers that check a script's declared keys (Dragonfly by default) refuse
a script that touches an undeclared key. Redis 7.0 in standalone mode does not check, so this
reads the sources: every key argument of every ``redis.call``/``redis.pcall`` must be
``KEYS[...]`` or a local taken from KEYS. tests/integration/test_lua_keys.py checks the same
at run time by watching what the scripts do in a real Redis.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

#: Which arguments (1-based, after the command name) are keys, for every command we use.
KEY_POSITIONS = {
    "LMOVE": (1, 2), "RPUSH": (1,), "LPUSH": (1,), "LPOP": (1,), "LREM": (1,), "LLEN": (1,),
    "SADD": (1,), "SREM": (1,), "SMEMBERS": (1,), "ZREM": (1,), "ZADD": (1,),
    "ZREMRANGEBYSCORE": (1,), "ZREMRANGEBYRANK": (1,), "INCR": (1,), "EXPIRE": (1,),
    "GET": (1,), "DEL": (1,), "EXISTS": (1,), "HGET": (1,), "SET": (1,), "TIME": (),
}
# Periodic jobs' and the limiters' scripts.
KEY_POSITIONS.update({"HEXISTS": (1,), "HMGET": (1,), "HSET": (1,), "HDEL": (1,), "ZCARD": (1,),
                      "ZRANGE": (1,), "PEXPIRE": (1,), "HINCRBY": (1,), "SCARD": (1,),
                      "HSETNX": (1,), "ZSCORE": (1,), "PTTL": (1,), "RENAME": (1, 2)})
CALL = re.compile(r"redis\.p?call\(\s*'(\w+)'\s*((?:,[^,()]*(?:\([^()]*\))?[^,()]*)*)\)")
FROM_KEYS = re.compile(r"local\s+([\w,\s]+?)\s*=\s*(KEYS\[[^\n]*)")


def scripts() -> dict[str, str]:
    folder = resources.files("sidequest").joinpath("lua")
    return {p.name: p.read_text("utf-8") for p in folder.iterdir() if p.name.endswith(".lua")}


def key_locals(source: str) -> set[str]:
    """Names bound only to KEYS entries (``local a, b = KEYS[1], KEYS[2]``)."""
    names: set[str] = set()
    for lhs, rhs in FROM_KEYS.findall(source):
        values = [v.strip() for v in rhs.split(",")]
        for name, value in zip([n.strip() for n in lhs.split(",")], values, strict=False):
            if re.fullmatch(r"KEYS\[[^\]]+\]", value):
                names.add(name)
    return names


def undeclared(source: str) -> list[str]:
    problems = []
    allowed = key_locals(source)
    calls = CALL.findall(source)
    assert calls or "redis." not in source, "a redis call the pattern cannot read"
    for command, rest in calls:
        args = [a.strip() for a in rest.split(",")[1:]]
        positions = KEY_POSITIONS.get(command.upper())
        if positions is None:
            problems.append(f"{command}: add its key positions to KEY_POSITIONS")
            continue
        for position in positions:
            arg = args[position - 1] if position <= len(args) else "<missing>"
            if not (re.fullmatch(r"KEYS\[[^\]]+\]", arg) or arg in allowed):
                problems.append(f"{command} touches {arg}, which is not a declared key")
    return problems


def test_every_script_is_read() -> None:
    found = scripts()
    assert {"enqueue_due.lua", "fetch.lua", "move.lua", "putback.lua", "requeue.lua",
            "totals.lua"} <= set(found)
    for name, source in found.items():
        assert len(CALL.findall(source)) == source.count("redis.call") + source.count(
            "redis.pcall"), name


@pytest.mark.parametrize("name", sorted(scripts()))
def test_script_touches_only_declared_keys(name: str) -> None:
    assert undeclared(scripts()[name]) == []


def test_inline_scripts_touch_only_declared_keys() -> None:
    from sidequest.worker import heartbeat

    assert undeclared(heartbeat._FORGET) == []


def test_the_check_catches_a_built_key_name() -> None:
    # The shapes the scripts had before: a key name built from an argument or a payload.
    assert undeclared("redis.call('LPUSH', 'queue:' .. ARGV[3], ARGV[2])") == [
        "LPUSH touches 'queue:' .. ARGV[3], which is not a declared key"]
    assert undeclared("local q = ARGV[1]\nredis.call('RPUSH', q, job)") == [
        "RPUSH touches q, which is not a declared key"]
    assert undeclared("redis.call('LMOVE', KEYS[1], dst, 'RIGHT', 'LEFT')") == [
        "LMOVE touches dst, which is not a declared key"]
    assert undeclared("redis.call('BLPOP', KEYS[1], 0)") == [
        "BLPOP: add its key positions to KEY_POSITIONS"]
