#!/usr/bin/env python3
"""A TCP proxy that delays every chunk of bytes by a fixed time in each direction.

    python bench/latency_proxy.py --target 127.0.0.1:6380 --delay-ms 1

Redis on loopback answers in tens of microseconds, which hides how many round trips a job
system makes per job; a real Redis is a network hop away. Sidekiq's own load test puts a
latency proxy between the worker and Redis for that reason, and so does this bench: 1 ms each
way turns every round trip into at least 2 ms.

Bytes keep their order and are not held back by one another: each chunk is stamped when it
arrives and written once its delay has passed, so pipelined traffic still streams (a delay,
not a bandwidth limit). The delay is at least the asked one; the event loop's timer adds up
to about a millisecond, which the bench measures and reports. Prints ``listening on
HOST:PORT`` once ready; runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

CHUNK = 65536


async def _read(reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]],
                delay: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((loop.time() + delay, b""))  # end of stream, after the data before it


async def _write(writer: asyncio.StreamWriter,
                 queue: asyncio.Queue[tuple[float, bytes]]) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError):
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    await asyncio.gather(_read(reader, queue, delay), _write(writer, queue))


class LatencyProxy:
    def __init__(self, target: tuple[str, int], delay: float,
                 listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.target = target
        self.delay = delay
        self.listen = listen
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._handle, *self.listen)
        host, port = self.server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def _handle(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, upstream_w, self.delay),
                             _pipe(upstream_r, client_w, self.delay))


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(target: tuple[str, int], delay: float, listen: tuple[str, int]) -> None:
    proxy = LatencyProxy(target, delay, listen)
    host, port = await proxy.start()
    print(f"listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--listen", default="127.0.0.1:0",
                        help="HOST:PORT to listen on (127.0.0.1:0 = a free port)")
    parser.add_argument("--delay-ms", type=float, default=1.0,
                        help="added delay each way, milliseconds (1)")
    args = parser.parse_args(argv)
    asyncio.run(serve(_address(args.target), args.delay_ms / 1000, _address(args.listen)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
