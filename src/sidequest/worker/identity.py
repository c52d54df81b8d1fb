"""A worker process's identity, ``hostname:pid:nonce`` as Sidekiq writes it. A ``-P``
supervisor picks each child's nonce before forking it, so that it knows the identity of a
child that dies and can have the child replacing it recover its jobs at once (light: the
supervisor imports it, and holds no Redis connection)."""

from __future__ import annotations

import os
import socket


def new_nonce() -> str:
    return os.urandom(6).hex()


def of(pid: int, nonce: str) -> str:
    host = os.environ.get("DYNO") or socket.gethostname()
    return f"{host}:{pid}:{nonce}"


def make(nonce: str | None = None) -> str:
    """This process's identity."""
    return of(os.getpid(), nonce or new_nonce())
