"""Jobs whose output and failures the CLI tests read from the worker's log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

from sidequest import Job


def _divide(value: int) -> float:
    return value / 0


class Divide(Job):
    name = "tests.Divide"
    retry = False

    def perform(self, value: int) -> None:
        _divide(value)


class Chatty(Job):
    """Prints lines the way job code does, to check they reach the log whole."""

    name = "tests.Chatty"

    def perform(self, n: int) -> None:
        for i in range(50):
            print(f"chatty-{n}-line-{i}-end")


class Nap(Job):
    """An ``async def`` job that awaits ``seconds`` on the worker's event loop."""

    name = "tests.Nap"

    async def perform(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Accented(Job):
    """Prints, and fails with, what an ASCII-only output cannot encode."""

    name = "tests.Accented"
    retry = False

    def perform(self, fail: bool) -> None:
        print("printed: café 🚀")
        if fail:
            raise ValueError("échec 🚀")


_hoard: list[int] = []


class HoardFiles(Job):
    """Opens files until the process has no descriptor left, then waits: what a leaking job
    does to the worker's own stop."""

    name = "tests.HoardFiles"

    def perform(self, seconds: float) -> None:
        try:
            while True:
                _hoard.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        time.sleep(seconds)


class SpawnsEcho(Job):
    """Runs a command that writes to its standard output, which it inherits."""

    name = "tests.SpawnsEcho"
    retry = False

    def perform(self) -> None:
        done = subprocess.run(["sh", "-c", "echo from a subprocess"], check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the command failed: exit code {done.returncode}")
