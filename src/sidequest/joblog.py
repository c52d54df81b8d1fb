"""The job running now, for an application's own log lines.

``JobFields`` is a logging filter: added to a handler, it gives each record made while a job
runs (in its thread, or its asyncio task) the job's ``jid``, ``job_class`` and ``queue``, so a
format can show them and a JSON formatter carries them, as Celery's task logger shows the
task id:

    handler.addFilter(sidequest.joblog.JobFields())
    handler.setFormatter(logging.Formatter("%(levelname)s [%(job_class)s %(jid)s] %(message)s"))

Outside a job they are empty strings, so the same format serves every line. The worker sets
``current`` around each job; nothing here imports the worker.
"""

from __future__ import annotations

import contextvars
import logging

#: (jid, class, queue) of the job running in this thread or task; None outside a job.
current: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar(
    "sidequest_job", default=None)

_NONE = ("", "", "")


class JobFields(logging.Filter):
    """Adds ``jid``, ``job_class`` and ``queue`` to every record it sees (empty outside a job);
    a record that already has one (Sidequest's own lines) keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        jid, job_class, queue = current.get() or _NONE
        fields = record.__dict__
        fields.setdefault("jid", jid)
        fields.setdefault("job_class", job_class)
        fields.setdefault("queue", queue)
        return True
