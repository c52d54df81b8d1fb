"""The fault proxy passes a reset from Redis on to the client.

When Redis dies with bytes unread on a connection (SIGKILL mid-traffic), its kernel answers
with RST. Through the proxy the client must see that reset at once, as it would without the
proxy; before this was fixed the proxy swallowed it and left the client's socket open and
silent, a black hole that lasted until the client's socket timeout (5.5 s for a fetcher).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
import redis

from fault.proxy import FaultProxy
from redis_server import NO_RETRY


def test_upstream_reset_reaches_the_client() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def reset_after_first_bytes() -> None:  # a "Redis" that dies with the command unread
        conn, _ = listener.accept()
        conn.recv(1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    thread = threading.Thread(target=reset_after_first_bytes, daemon=True)
    thread.start()
    proxy = FaultProxy(port).start()
    client = redis.Redis.from_url(proxy.url(), socket_timeout=3, retry=NO_RETRY)
    try:
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert time.monotonic() - started < 1.0  # the reset, not the 3 s socket timeout
    finally:
        client.close()
        proxy.stop()
        listener.close()
        thread.join(5)
