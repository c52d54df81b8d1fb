"""One-way imports: the client side never loads the worker (or, later, the web code)."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_sidequest_loads_no_worker_code() -> None:
    modules = loaded_after("import sidequest; import sidequest.testing")
    assert "sidequest.job" in modules and "sidequest.client" in modules
    assert not {m for m in modules if m.startswith("sidequest.worker")}
    assert "sidequest.cli" not in modules and "sidequest.dev" not in modules
    assert "sidequest.runner" not in modules


def test_worker_loads_without_the_dev_runner() -> None:
    modules = loaded_after("import sidequest.worker")
    assert "sidequest.worker.manager" in modules and "sidequest.dev" not in modules


def test_import_sidequest_loads_no_web_code() -> None:
    modules = loaded_after("import sidequest; import sidequest.api; import sidequest.metrics")
    assert not {m for m in modules if m.startswith("sidequest.web")}
    assert not {"starlette", "jinja2", "uvicorn", "a2wsgi"} & modules


def test_web_loads_without_the_worker() -> None:
    modules = loaded_after("import sidequest.web")
    assert "sidequest.web.app" in modules and "starlette" in modules
    assert not {m for m in modules if m.startswith("sidequest.worker")}
    assert "uvicorn" not in modules  # only `sidequest web` needs the server
