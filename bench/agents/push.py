"""``python -m bench.agents.push SYSTEM single|bulk|latency ...``: push bench jobs.

Imports ``bench.agents.SYSTEM_app`` by its name (a task registered from ``__main__`` would
carry the wrong name for the worker) and times its push functions; prints one JSON line.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys


def run(argv: list[str]) -> None:
    name, rest = argv[0], argv[1:]
    app = importlib.import_module(f"bench.agents.{name}_app")
    from bench.agents import common

    if hasattr(app, "setup"):
        app.setup()
    if inspect.iscoroutinefunction(app.push_one):
        asyncio.run(common.main_async(app.push_one, rest))
    else:
        common.main(app.push_one, getattr(app, "push_many", None), rest)


if __name__ == "__main__":
    run(sys.argv[1:])
