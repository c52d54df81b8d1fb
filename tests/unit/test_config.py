"""sidequest.config: defaults, queue specs, TOML files, validation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import sidequest
from sidequest import periodic_jobs
from sidequest.config import Config, build, load_file
from sidequest.errors import ConfigError
from sidequest.queue_specs import parse_queue


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sidequest.toml"
    path.write_text(text, "utf-8")
    return str(path)


# --- defaults -------------------------------------------------------------------------------


def test_build_without_anything_gives_sidekiqs_defaults() -> None:
    config = build()
    assert config == Config()
    assert config.concurrency == 5
    assert config.queues == (("default", 0),)
    assert config.queue_names == ["default"]
    assert config.strict is True
    assert config.timeout == 25.0
    assert config.max_retries == 25
    assert config.dead_max_jobs == 10_000
    assert config.dead_timeout == 180 * 24 * 3600
    assert config.lease_ttl >= 2 * config.heartbeat_interval


def test_none_overrides_are_ignored_and_others_win() -> None:
    config = build(concurrency=None, timeout=None, tag="api", environment="production")
    assert (config.concurrency, config.timeout) == (5, 25.0)
    assert (config.tag, config.environment) == ("api", "production")


def test_an_unknown_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="concurency"):
        build(concurency=10)


def test_config_is_frozen() -> None:
    config = build()
    with pytest.raises(AttributeError):
        config.concurrency = 9  # type: ignore[misc]


# --- queues ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("critical,3", ("critical", 3)),
        ("low", ("low", 0)),
        (" low , 2 ", ("low", 2)),
        ("low,", ("low", 0)),
        ("low,0", ("low", 0)),
        ("a:b.c-d_e,10", ("a:b.c-d_e", 10)),
    ],
)
def test_parse_queue(text: str, expected: tuple[str, int]) -> None:
    assert parse_queue(text) == expected


@pytest.mark.parametrize("text", ["low,high", "low,1.5", "low,2,3"])
def test_parse_queue_refuses_a_weight_that_is_not_a_whole_number(text: str) -> None:
    with pytest.raises(ConfigError, match=f"queue '{text}': the weight after the comma"):
        parse_queue(text)


@pytest.mark.parametrize("text", ["critical,1.5", "critical,abc"])
def test_a_bad_weight_is_asked_for_as_a_whole_number_with_an_example(text: str) -> None:
    with pytest.raises(ConfigError, match=r"must be a whole number, e\.g\. -q critical,3 "):
        parse_queue(text)


def test_queues_without_weights_are_strict_priority() -> None:
    config = build(queues=(parse_queue("critical"), parse_queue("default"), parse_queue("low")))
    assert config.strict is True
    assert config.queue_names == ["critical", "default", "low"]


def test_any_weight_makes_the_order_weighted() -> None:
    config = build(queues=(parse_queue("critical,3"), parse_queue("default,2"), ("low", 0)))
    assert config.strict is False
    assert config.queues == (("critical", 3), ("default", 2), ("low", 0))


@pytest.mark.parametrize(
    ("queues", "says"),
    [
        ((("default", 0), ("low", 0), ("default", 2)), "'default' is given twice"),
        ((), "no queues"),
        ((("bad name", 0),), "'bad name': use ASCII letters"),
        ((("", 0),), "queue '': use ASCII letters"),
        ((("low", -1),), "weight must be a whole number >= 0"),
    ],
)
def test_bad_queue_lists_are_refused(queues: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        build(queues=queues)


@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        (["default"], (("default", 0),)),
        ("low", (("low", 0),)),
        (["critical,3", ("default", 2), ["low", 1]], (("critical", 3), ("default", 2),
                                                       ("low", 1))),
    ],
)
def test_queues_from_code_take_the_settings_files_forms(queues: Any,
                                                         expected: Any) -> None:
    # build() is what an embedded worker's code calls; Django's SIDEQUEST["queues"] and a
    # TOML file take names and "name,weight" strings, so code will pass them too.
    assert build(queues=queues).queues == expected


@pytest.mark.parametrize(
    ("queues", "says"),
    [([3], "queue entry 3 must be"), (5, "queues must be a list"),
     (["a,b"], "weight after the comma must be a whole number")],
)
def test_queues_from_code_in_no_known_form_are_refused(queues: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        build(queues=queues)


def test_a_queue_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ConfigError):
        build(queues=(("default\n", 0),))


# --- numbers and timers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("concurrency", 0, "concurrency must be a whole number from 1 to 1000"),
        ("concurrency", 1001, "concurrency must be"),
        ("concurrency", True, "concurrency must be"),
        ("concurrency", "5", "concurrency must be"),
        ("concurrency", 2.0, "concurrency must be"),
        ("max_deaths", 0, "max_deaths must be"),
        ("dead_max_jobs", 0, "dead_max_jobs must be"),
        ("max_retries", -1, "max_retries must be a whole number >= 0"),
        ("timeout", 0, "timeout must be a positive number of seconds"),
        ("timeout", -1.5, "timeout must be"),
        ("poll_interval", "5", "poll_interval must be"),
        ("fetch_timeout", [], "fetch_timeout must be"),
        ("initial_poll_wait", -1, "initial_poll_wait must be a number of seconds"),
        ("initial_poll_wait", float("nan"), "initial_poll_wait must be"),
        ("initial_poll_wait", True, "initial_poll_wait must be"),
        ("log_level", "LOUD", "log level 'LOUD'"),
        ("log_format", "xml", "log format 'xml'"),
        ("adaptive_threads", "yes", "adaptive_threads must be true or false, got 'yes'"),
        ("batch_scheduling", 1, "batch_scheduling must be true or false, got 1"),
    ],
)
def test_bad_numbers_and_names_are_refused(field: str, value: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        build(**{field: value})


def test_lease_ttl_must_be_at_least_twice_the_heartbeat() -> None:
    with pytest.raises(ConfigError, match=r"lease_ttl \(9.9s\) must be at least twice"):
        build(heartbeat_interval=5.0, lease_ttl=9.9)
    assert build(heartbeat_interval=5.0, lease_ttl=10.0).lease_ttl == 10.0
    assert build(heartbeat_interval=0.2, lease_ttl=1.0).heartbeat_interval == 0.2


@pytest.mark.parametrize("field", ["timeout", "heartbeat_interval", "poll_interval"])
def test_nan_timers_are_refused(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        build(**{field: float("nan")})


def test_the_first_scheduler_poll_waits_10_seconds_by_default_as_sidekiq() -> None:
    assert build().initial_poll_wait == 10.0
    assert build(initial_poll_wait=0).initial_poll_wait == 0


def test_a_non_integer_max_retries_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_retries"):
        build(max_retries="many")


# --- TOML files -----------------------------------------------------------------------------


def test_a_toml_file_sets_fields_with_queues_as_strings_and_pairs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
concurrency = 12
queues = ["critical,3", ["default", 2], "low"]
require = "myapp.jobs"
labels = ["eu", "blue"]
heartbeat-interval = 1.0
lease_ttl = 4.0
log_level = "DEBUG"
""",
    )
    config = build(path)
    assert config.concurrency == 12
    assert config.queues == (("critical", 3), ("default", 2), ("low", 0))
    assert config.strict is False
    assert config.require == ("myapp.jobs",)
    assert config.labels == ("eu", "blue")
    assert (config.heartbeat_interval, config.lease_ttl) == (1.0, 4.0)
    assert config.log_level == "DEBUG"


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'concurrency = 12\nqueues = ["a", "b"]\n')
    config = build(path, concurrency=3, queues=None)
    assert config.concurrency == 3
    assert config.queue_names == ["a", "b"]


def test_load_file_returns_only_what_the_file_sets(tmp_path: Path) -> None:
    path = write(tmp_path, 'timeout = 8\nqueues = ["x"]\n')
    assert load_file(path) == {"timeout": 8, "queues": (("x", 0),)}


def test_an_unknown_setting_in_the_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "concurency = 10\n")
    with pytest.raises(ConfigError, match=r"'concurency'; did you mean 'concurrency'"):
        build(path)
    with pytest.raises(ConfigError, match=r"unknown setting 'zzz'; the settings are listed"):
        build(write(tmp_path, "zzz = 1\n"))


def test_every_flag_has_a_setting_processes_and_verbose_too(tmp_path: Path) -> None:
    config = build(write(tmp_path, "processes = 3\nverbose = true\n"))
    assert config.processes == 3 and config.verbose and config.log_level == "DEBUG"
    assert build(write(tmp_path, "processes = 3\n"), processes=2).processes == 2
    with pytest.raises(ConfigError, match=r"processes \(-P\) must be from 1 to 64"):
        build(processes=65)


def test_a_bad_value_in_the_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "concurrency = -1\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: concurrency"):
        build(path)
    # The same bad value from a flag does not blame the file.
    with pytest.raises(ConfigError, match=r"^concurrency"):
        build(write(tmp_path, "tag = 'x'\n"), concurrency=-1)


@pytest.mark.parametrize(("text", "says"), [
    ('queues = ["critical,abc"]', "queue 'critical,abc': the weight after the comma"),
    ('queues = [["critical", 1.5]]', "queue 'critical': weight must be a whole number"),
    ('queues = ["a", "a"]', "queue 'a' is given twice"),
    ('log_level = "loud"', "log level 'LOUD': use one of"),
    ('log_format = "xml"', "log format 'xml': choose text or json"),
])
def test_bad_queues_and_log_settings_in_the_file_name_the_file(
    tmp_path: Path, text: str, says: str,
) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(path)}: {re.escape(says)}"):
        build(path)


def test_a_bad_queue_from_a_flag_does_not_blame_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'queues = ["a"]\nlog_level = "INFO"\n')
    with pytest.raises(ConfigError, match=r"^queue 'b' is given twice"):
        build(path, queues=(("b", 0), ("b", 0)))
    with pytest.raises(ConfigError, match=r"^log level 'debug'"):
        build(path, log_level="debug")


def test_a_periodic_entry_checked_once_its_job_is_imported_names_the_file(
    tmp_path: Path,
) -> None:
    from sidequest.worker.periodic import load_entries

    path = write(tmp_path, '[[periodic]]\nname = "nr"\nclass = "late.Nightly"\nevery = 60\n'
                           "args = [1, 2]\n")
    config = build(path)  # the job is not imported yet: its perform cannot be checked

    class Nightly(sidequest.Job):
        name = "late.Nightly"

        def perform(self) -> None:
            pass

    try:  # the worker builds the entries again once -r has imported the jobs
        with pytest.raises(ConfigError, match=rf"^{re.escape(path)}: periodic entry 'nr': "
                                              r".*cannot take these arguments"):
            load_entries(config)
    finally:
        periodic_jobs.clear()


def test_extra_cannot_be_set_from_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'extra'"):
        build(write(tmp_path, "[extra]\na = 1\n"))


def test_file_values_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="twice"):
        build(write(tmp_path, 'queues = ["a", ["a", 2]]\n'))
    with pytest.raises(ConfigError, match="lease_ttl"):
        build(write(tmp_path, "heartbeat_interval = 11\n"))  # lease_ttl stays 20


@pytest.mark.parametrize(
    "queues",
    ['"critical"', "[1, 2]", '[["a", 1, 2]]', "[[3, 1]]", '[{name = "a"}]', '["a,x"]'],
)
def test_malformed_queue_entries_in_the_file_are_errors(tmp_path: Path, queues: str) -> None:
    with pytest.raises(ConfigError, match="queue"):
        build(write(tmp_path, f"queues = {queues}\n"))


def test_a_pair_with_a_non_numeric_weight_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="queue"):
        build(write(tmp_path, 'queues = [["default", "high"]]\n'))


def test_a_missing_or_invalid_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build(str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        build(write(tmp_path, "concurrency = = 3\n"))


def test_settings_mapping_is_checked_like_the_file() -> None:
    """A framework's settings dict (Django's SIDEQUEST) takes the file's keys and errors,
    named after where they came from; the file and the flags win over it."""
    from sidequest.config import build, from_mapping

    with pytest.raises(ConfigError, match=r"^settings.X: unknown setting 'concurency'; did you "
                                          r"mean 'concurrency'\?"):
        from_mapping({"concurency": 3}, "settings.X")
    base = from_mapping({"concurrency": 0, "queues": ["critical,2", "low"]}, "settings.X")
    with pytest.raises(ConfigError, match=r"^settings.X: concurrency must be a whole number"):
        build(base=base, base_source="settings.X")
    config = build(base=base, base_source="settings.X", concurrency=4)
    assert config.concurrency == 4 and config.queues == (("critical", 2), ("low", 0))


@pytest.mark.parametrize(("line", "says"), [
    ("require = 5", "require must be a string or a list of strings, got 5"),
    ("labels = 5", "labels must be a string or a list of strings, got 5"),
    ('labels = ["a", 3]', "labels must be a string or a list of strings"),
    ("environment = 5", "environment must be a string, got 5"),
    ("tag = 5", "tag must be a string, got 5"),
])
def test_a_setting_of_the_wrong_type_is_named_with_its_file(
        tmp_path: Path, line: str, says: str) -> None:
    # A TypeError traceback from deep in the start (or, for tag, nothing at all) before.
    path = tmp_path / "sidequest.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {says}")):
        build(str(path))


def test_a_framework_mapping_may_give_no_tag_and_a_set_of_labels() -> None:
    # As before the type checks: a Django SIDEQUEST setting written so.
    config = build(tag=None, labels={"eu"}, require=["app.jobs"])
    assert not config.tag and set(config.labels) == {"eu"}


def test_a_log_level_flag_wins_over_verbose_in_the_file(tmp_path: Path) -> None:
    file = write(tmp_path, "verbose = true\n")
    assert build(file, log_level="WARNING").log_level == "WARNING"
    assert build(file).log_level == "DEBUG"
    # -v on the command line wins over a level in the file.
    assert build(write(tmp_path, 'log_level = "WARNING"\n'), verbose=True).log_level == "DEBUG"


@pytest.mark.parametrize(("content", "words"), [
    (None, "is a directory: name the TOML file in it"),
    (b"tag = \"caf\xe9\"\n", "is not UTF-8 text (byte 10): save it as UTF-8 TOML"),
])
def test_a_config_path_that_is_no_text_file_is_named(tmp_path: Path, content: bytes | None,
                                                     words: str) -> None:
    path = tmp_path / "settings.toml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(f"config file {path} {words}")):
        build(str(path))


@pytest.mark.parametrize(("written", "level"), [("debug", "DEBUG"), ("info", "INFO"),
                                                ("warn", "WARNING"), ("Error", "ERROR")])
def test_the_file_takes_a_log_level_as_the_flag_does(tmp_path: Path, written: str,
                                                      level: str) -> None:
    assert build(write(tmp_path, f'log_level = "{written}"\n')).log_level == level
