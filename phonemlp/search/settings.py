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

HELP = """\
phonemlp-search: a resumable, parallel, pruning Optuna search of phonemlp-train settings.

  phonemlp-search study=s1 data.root=/data/hw1p2 n_trials=40 workers=2 epochs=10
  phonemlp-search study=s1 ...                   # the same command again continues the study
  phonemlp-search study=s1 report=true           # best trial, importances, table, plot, now
  phonemlp-search study=s1 launcher=slurm workers=8 slurm.partition=gpu data.root=...
  phonemlp-ablate searches/s1                    # every trial as a run, pruned ones included

Search keys (key=value); every other key=value is a phonemlp-train override given to every
trial (data.root=R, epochs=10, experiment=subset_search, model.depth=3, ...):

  study=NAME        the study (required); trials, storage and results in searches/NAME/
  n_trials=20       finished + pruned trials the study ends with (kept across runs; a failed
                    or killed trial is replaced)
  workers=1         worker processes; each starts the next trial as soon as its last one ends
  space=default     the search space: conf/search/NAME.yaml (shipped: default, tiny) or a
                    path to a .yaml file of that form (syntax at the top of default.yaml).
                    A key also given as an override is fixed there and leaves the search
  pruner=median     median | hyperband | none: stop a trial whose dev accuracy lags
  pruner_startup=5  median: finished trials before pruning starts
  pruner_warmup=1   median: epochs a trial always runs before it can be pruned
  sampler=tpe       tpe (constant liar, for parallel workers) | random
  sampler_seed=null seed of the samplers (worker i: sampler_seed + i)
  storage=null      null: a journal file searches/NAME/journal.log (several machines on a
                    shared filesystem can share it); or an Optuna storage URL
                    (postgresql://user:pass@host/db, sqlite:///search.db) or a journal file path
  dir=null          the study folder (default searches/NAME, relative to the current folder)
  launcher=local    local: worker processes on this machine (one GPU each, round-robin, where
                    there are several); slurm: one Slurm job per worker through submitit, with
                    conf/hydra/launcher/slurm.yaml's settings; submitit_local: the same jobs as
                    local processes (to try the Slurm route without Slurm)
  slurm.KEY=VALUE   a setting of conf/hydra/launcher/slurm.yaml (slurm.partition=gpu,
                    slurm.timeout_min=600, slurm.gpus_per_node=1, slurm.mem_gb=64, ...)
  max_failures=5    stop starting trials after this many failed in a row (a bad data.root...)
  stale_after_s=300 a trial whose worker runs on another host is taken as dead when it has
                    not been heard of for this long (same host: its process is checked)
  report=true       only write and print the results of the study as it stands

The study folder holds trials/<number>/ (an ordinary phonemlp-train run folder per trial),
trials.csv, search.png (history, dev accuracy per epoch, importances) and report.md, with the
best trial as a ready phonemlp-train command. Ctrl-C or SIGTERM stops every worker after its
current batch; the trials they were running resume from their checkpoints on the next run.
"""


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
    schema = OmegaConf.structured(SearchSettings)
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
