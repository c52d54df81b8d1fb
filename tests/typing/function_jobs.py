"""Checked by mypy in tests/unit/test_typing.py: calls to an @job function's enqueue methods
are checked against the function's own signature. Lines marked ``# wrong`` must be errors."""

from __future__ import annotations

from sidequest import job


@job(queue="low")
def send_welcome(user_id: int, template: str = "welcome") -> None: ...


send_welcome.perform_async(42)
send_welcome.perform_async(42, template="promo")
send_welcome.perform_in(60, 42, "promo")
send_welcome.perform_at(2_000_000_000, user_id=42)
send_welcome.perform_async("42")  # wrong
send_welcome.perform_async(42, colour="red")  # wrong
send_welcome.perform_in(60)  # wrong
