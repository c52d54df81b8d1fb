"""sidequest.config for users coming from Sidekiq: a sidekiq.yml, Sidekiq-only settings,
per-environment sections and ``critical:3`` queues each get an error or warning that says
what to write instead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sidequest.config import build, from_mapping
from sidequest.errors import ConfigError
from sidequest.queue_specs import parse_queue, warn_of_colon_weights
from sidequest.sidekiq_settings import EXAMPLE_TOML, SETTINGS_DOC

README = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")


def write(tmp_path: Path, text: str, name: str = "sidequest.toml") -> str:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return str(path)


def error_of(file: str) -> str:
    with pytest.raises(ConfigError) as caught:
        build(file)
    return str(caught.value)


def shown_toml(message: str) -> str:
    """The TOML block of a YAML error: between the first blank line and the next."""
    return message.split("\n\n")[1]


# --- where the settings are listed ----------------------------------------------------------


def test_the_settings_reference_names_a_readme_heading_and_part_that_exist() -> None:
    assert "## Running workers\n" in README
    section = README.split("## Running workers\n")[1].split("\n## ")[0]
    assert "**Settings file.**" in section
    assert SETTINGS_DOC == ("the README's \"Running workers\" section (#running-workers), "
                            "under \"Settings file\"")


def test_an_unknown_setting_points_at_the_running_workers_section(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "zzz = 1\n"))
    assert message.endswith(f"unknown setting 'zzz'; the settings are listed in {SETTINGS_DOC}")


# --- Sidekiq-only settings ------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "says"), [
    ('pidfile = "x.pid"', "'pidfile'; Sidekiq 6 removed it too: run the worker under systemd"),
    ('logfile = "x.log"', "'logfile'; Sidekiq 6 removed it too: the worker logs to standard"),
    ("daemon = true", "'daemon'; Sidekiq 6 removed it too: run the worker under systemd"),
    ("dead_timeout_in_seconds = 60", "write dead_timeout (seconds)"),
    ("average_scheduled_poll_interval = 5", "write poll_interval"),
    ("strict = true", "strict when no queue has a weight"),
])
def test_a_sidekiq_only_setting_says_what_to_do_instead(tmp_path: Path, setting: str,
                                                         says: str) -> None:
    assert says in error_of(write(tmp_path, f'require = ["app.jobs"]\n{setting}\n'))


def test_a_frameworks_settings_get_the_same_hints() -> None:
    with pytest.raises(ConfigError, match=r"^settings.X: unknown setting 'pidfile'; Sidekiq 6"):
        from_mapping({"pidfile": "x.pid"}, "settings.X")


# --- per-environment sections ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["[production]\nconcurrency = 3\n", "[staging]\n",
                                  "[eu-west]\ntimeout = 8\n"])
def test_a_per_environment_table_says_there_are_none(tmp_path: Path, text: str) -> None:
    message = error_of(write(tmp_path, text))
    assert "Sidequest has no per-environment sections: keep one settings file per " in message
    assert "-e/--environment only names the environment, it picks no section" in message


def test_a_misspelt_table_of_sidequests_own_still_gets_did_you_mean(tmp_path: Path) -> None:
    assert "unknown setting 'shard'; did you mean 'shards'?" in error_of(
        write(tmp_path, '[shard]\ncritical = "redis://other:6379/0"\n'))


# --- sidekiq.yml ----------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["schedule", "scheduler"])
def test_a_sidekiq_cron_block_points_at_periodic_tables(tmp_path: Path, block: str) -> None:
    # sidekiq-cron's and sidekiq-scheduler's block was called an environment section.
    message = error_of(write(tmp_path, f':concurrency: 5\n:{block}:\n  hello:\n'
                             f'    cron: "0 * * * * *"\n    class: HelloWorld\n', "s.yml"))
    assert f"not translated: {block}: write periodic jobs as [[periodic]] tables" in message
    assert "per-environment" not in message


def test_the_walkthroughs_sidekiq_yml_is_shown_as_toml(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, ":concurrency: 4\n:queues:\n  - [critical, 3]\n",
                             "sidekiq.yml"))
    assert "not valid TOML" not in message and "Invalid statement" not in message
    assert "Sidequest reads a TOML settings file, not sidekiq.yml" in message
    assert shown_toml(message) == 'concurrency = 4\nqueues = ["critical,3"]'
    assert message.endswith(f"The settings are listed in {SETTINGS_DOC}.")


SIDEKIQ_YML = """\
---
# what a Rails app's config/sidekiq.yml holds
:concurrency: 12
:timeout: 8   # seconds
:tag: shop
:verbose: false
:max_retries: 5
:dead_timeout_in_seconds: 3600
:labels: [eu, blue]
:require: app.jobs
:queues:
- critical
- [default, 2]
- ["low", 1]
"""


def test_what_the_translation_shows_is_a_working_settings_file(tmp_path: Path) -> None:
    """Saved as the message says, the TOML gives the settings the YAML meant."""
    toml = shown_toml(error_of(write(tmp_path, SIDEKIQ_YML, "sidekiq.yaml")))
    config = build(write(tmp_path, toml + "\n"))
    assert (config.concurrency, config.timeout, config.tag) == (12, 8, "shop")
    assert (config.verbose, config.max_retries, config.dead_timeout) == (False, 5, 3600)
    assert config.labels == ("eu", "blue") and config.require == ("app.jobs",)
    assert config.queues == (("critical", 0), ("default", 2), ("low", 1))


def test_what_cannot_be_translated_is_listed_with_what_to_do(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, """\
:concurrency: <%= ENV.fetch("RAILS_MAX_THREADS", 10) %>
:require: ./lib/jobs.rb
:pidfile: ./tmp/pids/sidekiq.pid
:queues: [[critical, 2], default]
production:
  :concurrency: 25
  :queues:
    - big
what is this
""", "sidekiq.yml"))
    assert shown_toml(message) == (
        'require = ["app.jobs"]  # not ./lib/jobs.rb, which is Ruby: the Python module that '
        'defines your jobs\nqueues = ["critical,2", "default"]')
    notes = re.findall(r"not translated: (.*)", message)
    assert notes[0].startswith("production: Sidequest has no per-environment sections")
    assert notes[1] == "line 9 ('what is this') was not read"
    assert notes[2].startswith("concurrency: ERB (<%= %>) is Ruby: write the value, or pass")
    assert notes[3].startswith("pidfile: Sidekiq 6 removed it too")
    assert len(notes) == 4


def test_yaml_with_nothing_to_translate_shows_the_readmes_example(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, ":pidfile: x.pid\n", "sidekiq.yml"))
    assert "A TOML settings file looks like this" in message
    assert shown_toml(message) + "\n" == EXAMPLE_TOML
    block = README.split("<!-- readme:config -->")[1].split("```")[1]
    assert all(line in block.splitlines() for line in EXAMPLE_TOML.splitlines())


def test_sidekiq_yaml_under_another_name_is_recognised_by_its_colon_keys(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, ":concurrency: 3\n", "worker.toml"))
    assert "is YAML, like Sidekiq's sidekiq.yml" in message
    assert shown_toml(message) == "concurrency = 3"
    assert "not valid TOML" in error_of(write(tmp_path, "concurrency = = 3\n"))


# --- -q critical:3 --------------------------------------------------------------------------


def test_a_queue_named_like_a_colon_weight_warns_and_is_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="sidequest"):
        config = build(queues=(parse_queue("critical:3"), parse_queue("a:b"),
                               parse_queue("low,1")))
        assert not caplog.records  # said by the worker, once its logging is set up
        warn_of_colon_weights(config.queues)
        warn_of_colon_weights(build(write(tmp_path, 'queues = ["mail:10", "x:y:2,1"]\n')).queues)
    assert config.queue_names == ["critical:3", "a:b", "low"]  # and x:y:2, weighted: silent
    assert [r.getMessage() for r in caplog.records] == [
        "queue 'critical:3' is a queue of that name, not 'critical' with weight 3: a weight "
        "follows a comma, -q critical,3 (\"critical,3\" in the settings file)",
        "queue 'mail:10' is a queue of that name, not 'mail' with weight 10: a weight "
        "follows a comma, -q mail,10 (\"mail,10\" in the settings file)",
    ]
