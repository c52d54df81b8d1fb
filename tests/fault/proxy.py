"""A small TCP fault proxy for Redis, run in a background thread with its own event loop.

Put it between workers and Redis (``REDIS_URL=proxy.url()``) and inject faults:

- ``latency = 0.01``      every chunk waits 10 ms in each direction
- ``reset_all()``         every open connection is closed with RST (SO_LINGER 0)
- ``blackhole(True)``     bytes are silently dropped both ways, no RST, no FIN: clients see
                          nothing until their socket timeout (a dropped route, a dead NAT entry)
- ``pause(True)``         bytes are held, not dropped, until ``pause(False)`` (TCP retransmits
                          through a short partition)
- ``cut(match, "after")`` when a client sends a command ``match(args)`` accepts, forward it
                          (Redis runs it), then RST the client before the reply reaches it;
                          ``"before"``: RST the client without forwarding the command

Commands are parsed from the client's RESP stream (arrays of bulk strings, which is what
redis-py sends), so a rule can name a command and its arguments, e.g. the EVALSHA of the
fetch script with a non-zero fetch count. ``commands`` counts every command name seen.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

Args = list[bytes]
Match = Callable[[Args], bool]


def script_sha(name: str) -> bytes:
    """The SHA1 redis-py sends in EVALSHA for ``sidequest/lua/<name>.lua``."""
    source = resources.files("sidequest").joinpath(f"lua/{name}.lua").read_bytes()
    return hashlib.sha1(source).hexdigest().encode()


def evalsha_of(name: str, check: Callable[[Args], bool] | None = None) -> Match:
    """Matches ``EVALSHA <sha of name> ...`` (and ``check(args)`` if given)."""
    sha = script_sha(name)

    def match(args: Args) -> bool:
        if len(args) < 2 or args[0].upper() != b"EVALSHA" or args[1].lower() != sha:
            return False
        return check is None or check(args)

    return match


class RespParser:
    """Incremental parser of a client's command stream; tracks stream offsets.

    ``feed(data)`` returns ``(start, end, args)`` for each command completed by ``data``,
    where start/end are offsets in the whole stream (end exclusive).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]

    def feed(self, data: bytes) -> list[tuple[int, int, Args]]:
        self._buf += data
        out = []
        while True:
            parsed = self._one()
            if parsed is None:
                break
            length, args = parsed
            out.append((self._base, self._base + length, args))
            del self._buf[:length]
            self._base += length
        return out

    def _line(self, pos: int) -> tuple[bytes, int] | None:
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            return None
        return bytes(self._buf[pos:end]), end + 2

    def _one(self) -> tuple[int, Args] | None:
        head = self._line(0)
        if head is None:
            return None
        line, pos = head
        if not line.startswith(b"*"):  # an inline command
            return pos, line.split()
        args: Args = []
        for _ in range(int(line[1:])):
            bulk = self._line(pos)
            if bulk is None:
                return None
            size_line, pos = bulk
            size = int(size_line[1:])
            if len(self._buf) < pos + size + 2:
                return None
            args.append(bytes(self._buf[pos : pos + size]))
            pos += size + 2
        return pos, args


@dataclass
class Rule:
    match: Match
    when: str  # "after" | "before"
    times: int
    fired: int = 0
    seen: list[Args] = field(default_factory=list)


class _Conn:
    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.cut = False  # no more bytes to the client, ever


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST instead of FIN."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.latency = 0.0
        self.commands: collections.Counter[str] = collections.Counter()
        self.connections = 0  # accepted so far
        self._blackhole = False
        self._paused = False
        self._rules: list[Rule] = []
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy",
                                        daemon=True)

    # -- control (any thread) ------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Close the port and reset every connection: Redis is unreachable from here on.
        Idempotent: a test may stop it before its fixture does."""
        if not self._thread.is_alive():
            return
        if self._server is not None:
            # Closed on the loop's own thread: asyncio's Server is not thread-safe, and a
            # close from here raced with the loop detaching the last connection (both woke
            # the server's waiters; the second found none: a TypeError at teardown).
            self._call(_close(self._server))
            self.reset_all()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def blackhole(self, on: bool) -> None:
        self._blackhole = on

    def pause(self, on: bool) -> None:
        self._paused = on

    def cut(self, match: Match, when: str = "after", times: int = 1) -> Rule:
        assert when in ("after", "before")
        rule = Rule(match, when, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def reset_all(self) -> int:
        """RST every open connection (both sides); returns how many there were."""

        async def reset() -> int:
            conns = list(self._conns)
            for conn in conns:
                conn.cut = True
                _rst(conn.client)
                _rst(conn.upstream)
            return len(conns)

        return int(self._call(reset()))

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- the loop --------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        self._conns.add(conn)
        self.connections += 1
        try:
            try:
                up_reader, conn.upstream = await asyncio.open_connection(*self.upstream)
            except OSError:
                _rst(writer)  # Redis is down: the client sees "connection reset"
                return
            await asyncio.gather(
                self._pump(conn, reader, conn.upstream, RespParser()),
                self._pump(conn, up_reader, writer, None),
                return_exceptions=True,
            )
        finally:
            self._conns.discard(conn)
            for w in (writer, conn.upstream):
                if w is not None and not w.transport.is_closing():
                    w.transport.abort()

    async def _pump(self, conn: _Conn, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    parser: RespParser | None) -> None:
        while True:
            try:
                data = await src.read(65536)
            except ConnectionError:
                # One side reset (Redis SIGKILLed with bytes unread): pass the reset on, or the
                # other side would wait for bytes that can never come (a silent black hole).
                conn.cut = True
                _rst(dst)
                return
            if not data:
                break
            await self._hold()
            if self._blackhole:
                if parser is not None:
                    parser.feed(data)  # stay in step with the stream; the bytes are dropped
                continue
            if parser is not None:
                if self._forward_commands(conn, parser, data, dst):
                    return
            elif not conn.cut:  # after a cut, the reply (and anything later) is dropped
                dst.write(data)
            await dst.drain()
        # EOF from one side: pass the half-close on (Redis still answers what it got).
        if not dst.transport.is_closing() and dst.can_write_eof():
            dst.write_eof()

    async def _hold(self) -> None:
        """Wait while paused, then for the injected latency."""
        while self._paused:
            await asyncio.sleep(0.005)
        if self.latency:
            await asyncio.sleep(self.latency)

    def _forward_commands(self, conn: _Conn, parser: RespParser, data: bytes,
                          upstream: asyncio.StreamWriter) -> bool:
        """Forward ``data`` to Redis, applying cut rules; True when the connection was cut."""
        start = parser._base + len(parser._buf)  # stream offset of data[0]
        for begin, end, args in parser.feed(data):
            if args:
                self.commands[args[0].decode("latin-1").upper()] += 1
            rule = self._rule_for(args)
            if rule is None:
                continue
            conn.cut = True
            upto = end if rule.when == "after" else begin
            if upto > start:
                upstream.write(data[: upto - start])
            if upstream.can_write_eof():
                upstream.write_eof()  # Redis runs what it has, then sees the FIN
            _rst(conn.client)
            return True
        upstream.write(data)
        return False

    def _rule_for(self, args: Args) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.fired < rule.times and rule.match(args):
                    rule.fired += 1
                    rule.seen.append(args)
                    return rule
        return None


async def _close(server: asyncio.Server) -> None:
    server.close()
