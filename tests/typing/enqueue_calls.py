"""Enqueue calls for the type checkers: tests/unit/test_typing.py runs mypy and pyright on
this file. A line ending in ``# error: CODE`` must get that mypy error (and some pyright
error); every other line must get none."""

from __future__ import annotations

from datetime import timedelta

from sidequest import Job, job


class SendWelcome(Job):
    queue = "mailers"

    def perform(self, user_id: int, template: str = "welcome") -> None:
        pass


class Nightly(SendWelcome):
    """Inherits perform, so its enqueue methods take the same arguments."""


@job(queue="low")
def build_report(report_id: int, *, fmt: str = "pdf") -> str:
    return f"{report_id}.{fmt}"


@job
def clear_cache(key: str) -> None:
    pass


def right_calls() -> None:
    SendWelcome.perform_async(42)
    SendWelcome.perform_async(42, template="reminder")
    SendWelcome.perform_async(user_id=42)
    SendWelcome.perform_in(300, 42, "reminder")
    SendWelcome.perform_in(timedelta(hours=1), 42, template="reminder")
    SendWelcome.perform_at(1_900_000_000, 42)
    SendWelcome.set(queue="critical").perform_async(42, template="reminder")
    SendWelcome.set(retry=False).perform_in(60, 42)
    SendWelcome.perform_bulk([[1], [2, "reminder"]])
    Nightly.perform_async(7)
    build_report.perform_async(1, fmt="csv")
    build_report.perform_in(60, 1)
    build_report.set(queue="urgent").perform_at(1_900_000_000, 1, fmt="html")
    clear_cache.perform_async("home")
    name: str = build_report(1, fmt="csv")  # calling it runs the function now
    print(name)


def wrong_calls() -> None:
    SendWelcome.perform_async("42")  # error: arg-type
    SendWelcome.perform_async(42, tmpl="reminder")  # error: call-arg
    SendWelcome.perform_async()  # error: call-arg
    SendWelcome.perform_async(42, "a", "b")  # error: call-arg
    SendWelcome.perform_in(300, "42")  # error: arg-type
    SendWelcome.perform_at(1_900_000_000)  # error: call-arg
    SendWelcome.set(queue="critical").perform_async(template="x")  # error: call-arg
    SendWelcome.set(queue="critical").perform_in(60, 1, 2)  # error: arg-type
    Nightly.perform_async()  # error: call-arg
    build_report.perform_async("1")  # error: arg-type
    build_report.perform_async(1, "csv")  # error: call-arg
    build_report.perform_in(60, 1, format="csv")  # error: call-arg
    build_report.set(queue="urgent").perform_async()  # error: call-arg
    clear_cache.perform_at(1_900_000_000, 1)  # error: arg-type
    build_report(1, fmt=2)  # error: arg-type
