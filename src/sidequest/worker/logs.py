"""Log setup for the worker: one line per job start/done/fail, plain text or JSON.

Per-job lines are built only when their level is enabled, since at thousands of jobs a
second formatting is a real cost; ``-v`` and ``--log-level`` choose.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

LOGGER = "sidequest"
_JOB_FIELDS = ("tid", "class", "jid", "elapsed")


class TextFormatter(logging.Formatter):
    """``2026-11-27T11:40:00.123Z pid=1 tid=ab class=Foo jid=f00 elapsed=0.01 INFO: done``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"{stamp}.{int(record.msecs):03d}Z pid={record.process}"]
        for name in _JOB_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                parts.append(f"{name}={value}")
        line = f"{' '.join(parts)} {record.levelname}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": record.created,
            "pid": record.process,
            "lvl": record.levelname,
            "msg": record.getMessage(),
        }
        for name in _JOB_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(level: str, fmt: str) -> logging.Logger:
    logger = logging.getLogger(LOGGER)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger


def thread_id() -> str:
    """A short id for the current thread, unique within the process (Sidekiq's tid shape)."""
    value = (threading.get_ident() ^ os.getpid()) & 0xFFFFFFFFFFFF
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
    return out or "0"
