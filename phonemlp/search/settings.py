"""The search's own keys (a small structured config) and the command line that sets them.

Every `key=value` whose key is one of SearchSettings' fields sets the search; every other one
is a fixed phonemlp-train override passed to each trial as it was typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from phonemlp.errors import PhonemlpError

PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
LAUNCHERS = ("local", "slurm", "submitit_local")
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass
class SearchSettings:
    study: str | None = None
    n_trials: int = 20
    workers: int = 1
    space: str = "default"
    pruner: str = "median"
    pruner_startup: int = 5
    pruner_warmup: int = 1
    sampler: str = "tpe"
    sampler_seed: int | None = None
    storage: str | None = None
    dir: str | None = None
    launcher: str = "local"
    slurm: dict[str, Any] = field(default_factory=dict)
    max_failures: int = 5
    stale_after_s: int = 300
    report: bool = False


SEARCH_KEYS = {f.name for f in fields(SearchSettings)}

COMMAND_CONFIG = "search_command"  # conf/search_command.yaml: the defaults and --help


def search_help() -> str:
    """--help: conf/search_command.yaml, the same file the defaults come from."""
    from phonemlp.cli import command_help

    return command_help("phonemlp-search", COMMAND_CONFIG) + "\n"


def search_defaults() -> Any:
    """The search's keys typed by SearchSettings, with conf/search_command.yaml's values."""
    from importlib import resources

    text = resources.files("phonemlp.conf").joinpath(f"{COMMAND_CONFIG}.yaml").read_text()
    return OmegaConf.merge(OmegaConf.structured(SearchSettings), OmegaConf.create(text))


def split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """The search's own `key=value` and the phonemlp-train overrides, each in command order."""
    own, overrides = [], []
    for text in argv:
        if "=" not in text:
            raise PhonemlpError(
                f"{text!r}: arguments are key=value (search keys and phonemlp-train "
                "overrides); see phonemlp-search --help"
            )
        key = text.split("=", 1)[0]
        root = key.lstrip("+~").split(".")[0]
        (own if root in SEARCH_KEYS and not key.startswith(("+", "~")) else overrides).append(text)
    for text in overrides:
        if text.split("=", 1)[0] in ("resume", "hydra.run.dir", "hydra.sweep.dir"):
            raise PhonemlpError(
                f"{text}: each trial has its own run folder, searches/<study>/trials/<n>; "
                "drop this override"
            )
    return own, overrides


def parse_settings(own: list[str]) -> SearchSettings:
    """The search keys of the command line, typed and checked; one line naming a bad key."""
    schema = search_defaults()
    for text in own:
        try:
            given = OmegaConf.from_dotlist([text])
            schema = OmegaConf.merge(schema, given)
        except OmegaConfBaseException as error:
            reason = str(error).splitlines()[0]
            raise PhonemlpError(f"{text}: {reason}; see phonemlp-search --help") from None
    settings: SearchSettings = OmegaConf.to_object(schema)  # type: ignore[assignment]
    check_settings(settings)
    return settings


def check_settings(s: SearchSettings) -> None:
    if s.study is None:
        raise PhonemlpError("study is required; set it as study=NAME (e.g. study=s1)")
    if not STUDY_NAME.fullmatch(s.study):
        raise PhonemlpError(
            f"study={s.study}: use letters, digits, '_', '.' or '-' (it names a folder)"
        )
    checks = [
        ("n_trials", s.n_trials >= 1, "an integer >= 1"),
        ("workers", s.workers >= 1, "an integer >= 1"),
        ("pruner", s.pruner in PRUNERS, "one of " + ", ".join(PRUNERS)),
        ("pruner_startup", s.pruner_startup >= 0, "an integer >= 0"),
        ("pruner_warmup", s.pruner_warmup >= 0, "an integer >= 0"),
        ("sampler", s.sampler in SAMPLERS, "one of " + ", ".join(SAMPLERS)),
        ("launcher", s.launcher in LAUNCHERS, "one of " + ", ".join(LAUNCHERS)),
        ("max_failures", s.max_failures >= 1, "an integer >= 1"),
        ("stale_after_s", s.stale_after_s >= 10, "an integer >= 10 (seconds)"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise PhonemlpError(f"{key}={getattr(s, key)} must be {what}")
