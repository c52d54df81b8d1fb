"""The README's Django commands run as written on a copy of examples/django_project: the
migration, an order placed in a transaction, and `manage.py sidequest`, which sends the
receipt (an enqueue_on_commit job) and runs the count_orders task; and its "Testing a Django
app" recipe, run by `manage.py test` in that copy."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers import readme_block, wait_for
from redis_server import RedisServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_project"


def commands() -> list[str]:
    lines = [line.strip() for line in readme_block("readme:django-run").splitlines()]
    assert lines[0] == "cd examples/django_project"
    assert all(line.startswith("python manage.py ") for line in lines[1:])
    return lines[1:]


def test_readme_django_commands_run(redis_server: RedisServer, tmp_path: Path) -> None:
    project = tmp_path / "django_project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SETTINGS_MODULE", "SIDEQUEST_REDIS_URL")}
    env["REDIS_URL"] = redis_server.url
    with redis_server.client() as r:
        r.flushall()
    *steps, worker_line = commands()
    outputs = []
    for line in steps:
        done = subprocess.run([sys.executable, *line.split()[1:]], cwd=project, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"{line}: {done.stderr}"
        outputs.append(done.stdout)
    result_id = outputs[-1].split()[-1]  # place_order prints the task's result id
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, *worker_line.split()[1:]], cwd=project,
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "receipt sent to ada@example.com" in log.read_text(), 60,
                 "the receipt job")
        def orders() -> list[tuple[str, int]] | None:
            with sqlite3.connect(project / "db.sqlite3") as db:
                rows = db.execute("select email, receipt_sent from orders_order").fetchall()
            return rows if rows and rows[0][1] else None

        # The job prints its line, then saves the order: wait for the save.
        assert wait_for(orders, 30, "the order marked sent") == [("ada@example.com", 1)]
        script = ("from orders.tasks import count_orders; "
                  f"r = count_orders.get_result({result_id!r}); print(r.status, r.return_value)")

        def task_done() -> str | None:
            shown = subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", script], cwd=project, env=env,
                capture_output=True, text=True, timeout=120, check=False)
            assert shown.returncode == 0, shown.stderr
            last = shown.stdout.strip().splitlines()[-1]  # after Django's auto-import note
            return last if "SUCCESSFUL" in last else None

        assert wait_for(task_done, 60, "the count_orders task").split() == ["SUCCESSFUL", "1"]
    finally:
        worker.terminate()
        worker.wait(30)


def test_readme_django_testing_recipe_passes(redis_server: RedisServer, tmp_path: Path) -> None:
    """The recipe's TestCase, as orders/tests.py, passes under Django's test runner without
    writing to Redis (fake mode), its on-commit push run by captureOnCommitCallbacks."""
    recipe = readme_block("readme:django-testing")
    assert recipe.startswith("# orders/tests.py\n")
    project = tmp_path / "django_project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__"))
    (project / "orders" / "tests.py").write_text(recipe, "utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SETTINGS_MODULE", "SIDEQUEST_REDIS_URL")}
    env["REDIS_URL"] = redis_server.url
    with redis_server.client() as r:
        r.flushall()
        done = subprocess.run([sys.executable, "manage.py", "test", "orders", "-v", "2"],
                              cwd=project, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Ran 1 test" in done.stderr and "\nOK" in done.stderr, done.stderr
        assert "receipt sent to ada@example.com" in done.stdout  # the job ran, drained
        assert r.keys("*") == []  # nothing pushed to Redis
