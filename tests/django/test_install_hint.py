"""Without Django, the integration says which extra to install, as the other extras do
(``pip install 'sidequest[flask]'``, ...), instead of a bare "No module named 'django'"."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Django made uninstallable in a fresh interpreter: a finder ahead of the others answers
#: every django module as missing, as an environment without Django does.
WITHOUT_DJANGO = """
import importlib.abc, sys

class NoDjango(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "django" or name.startswith("django."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoDjango())
"""


@pytest.mark.parametrize("statement", [
    "from sidequest.contrib.django import SidequestBackend",  # TASKS' BACKEND
    "import sidequest.contrib.django",                         # INSTALLED_APPS
    "import sidequest.contrib.django.urls",                    # include() in urls.py
])
def test_without_django_the_error_names_the_extra(statement: str) -> None:
    result = subprocess.run([sys.executable, "-c", WITHOUT_DJANGO + statement],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0, "imported without Django"
    last = result.stderr.strip().splitlines()[-1]
    assert last == ("ImportError: sidequest.contrib.django needs Django: "
                    "pip install 'sidequest[django]'"), result.stderr


def test_the_error_names_django_as_the_missing_module() -> None:
    """A worker whose -r module imports the integration reads ``name`` to tell a missing
    package from a module path that depends on the working directory."""
    check = WITHOUT_DJANGO + (
        "try:\n    import sidequest.contrib.django\n"
        "except ImportError as exc:\n    print(exc.name)\n")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.stdout.strip() == "django", result.stderr


def test_the_check_blocks_django_in_the_subprocess() -> None:
    """The finder does hide Django (else the test above would prove nothing)."""
    result = subprocess.run([sys.executable, "-c", WITHOUT_DJANGO + "import django"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert "ModuleNotFoundError: No module named 'django'" in result.stderr, result.stderr
