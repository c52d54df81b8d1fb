"""With a cluster URL in the environment, key names are the tagged ones from ``import
sidequest`` on: what an application reads while its modules load is what it will use."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

READ_AT_IMPORT = (
    "import sidequest\n"
    "from sidequest import keys\n"
    "RETRY = keys.RETRY  # an application's constant, read while its module loads\n"
    "from sidequest.api import RetrySet\n"
    "print(RETRY, keys.queue('default'), RetrySet().name)\n"
)


def names_with(url: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SIDEQUEST_REDIS_URL")}
    if url is not None:
        env["REDIS_URL"] = url
    out = subprocess.run([sys.executable, "-c", READ_AT_IMPORT], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return out.split()


@pytest.mark.parametrize("url", ["redis+cluster://127.0.0.1:7000", "rediss+cluster://h:1,h:2"])
def test_a_cluster_url_in_the_environment_tags_names_read_at_import(url: str) -> None:
    assert names_with(url) == ["{sq}retry", "{sq}queue:default", "{sq}retry"]


@pytest.mark.parametrize("url", [None, "redis://127.0.0.1:6379/0"])
def test_otherwise_the_names_are_sidekiqs(url: str | None) -> None:
    assert names_with(url) == ["retry", "queue:default", "retry"]
