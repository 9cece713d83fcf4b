"""The console scripts' entry points: Hydra's command line over the Python API (api.py).

Every command takes `key=value` overrides composed from the YAML the package ships, and its
`--help` is generated from that same config. Nothing heavy (torch, pandas, wandb) is imported
before the command has parsed its arguments, so `--help` returns at once.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("phonemlp")

CONFIG_PATH = "pkg://phonemlp.conf"


def train() -> None:
    """phonemlp-train: one run, or a sweep with -m (each job a run; failures score -inf)."""
    _hydra_app("phonemlp-train", "config", _train_job)


def _hydra_app(program: str, config_name: str, task: Any) -> None:
    """Run `task` as Hydra's app for `program`. A problem the user can fix (a misspelt key, a
    wrong type, an unknown group option, a bad setting) ends as one line and exit status 2:
    Hydra hands its own errors on (HYDRA_FULL_ERROR) instead of printing several lines."""
    from phonemlp.errors import exit_on_user_error, quick_exit

    if any(a in ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info") for a in sys.argv):
        import signal  # printing only: end quietly if the reader stops early (| head)

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    with quick_exit(), exit_on_user_error(program):
        hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)(task)()


def _train_job(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from phonemlp.errors import exit_on_user_error, user_error_message
    from phonemlp.records import FAILED_SCORE, release_memory

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    group = None
    if sweeping:
        sweep = Path(hydra_cfg.sweep.dir).resolve()
        group = f"{sweep.parent.name}/{sweep.name}"
    with exit_on_user_error("phonemlp-train"):
        from phonemlp.api import run_training

        try:
            overrides = list(hydra_cfg.overrides.task)
            summary = run_training(overrides, run_dir, wandb_group=group, composed=cfg)
        except Exception as error:
            message = user_error_message(error)
            if not sweeping or message is None:
                raise
            log.error(f"phonemlp-train: error: {message}")
            log.error(f"phonemlp-train: {run_dir} failed; the sweep goes on")
            return FAILED_SCORE
        finally:
            if sweeping:  # the next job runs in this process
                release_memory()
        return summary["best_dev_acc"]


class SweepTable(Callback):
    """phonemlp-train's Hydra callback: when a multirun ends, write and print its ablation
    table (phonemlp-ablate; imported only then: a single run does not pay for pandas)."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from phonemlp.ablate import write_ablations

        sweep = Path(config.hydra.sweep.dir)
        try:
            result = write_ablations([sweep])
        except Exception as error:  # the runs are already recorded; the table can wait
            log.warning(f"phonemlp-ablate {sweep} failed: {error}")
            return
        log.info(f"\n{result.text}\nwrote {', '.join(str(p) for p in result.written)}")


def predict() -> None:
    """phonemlp-predict: a Kaggle CSV (or the dev accuracy) from checkpoints."""
    _hydra_app("phonemlp-predict", "predict", _predict_job)


def _predict_job(cfg: DictConfig) -> Any:
    from phonemlp.api import out_of_memory_hint
    from phonemlp.errors import exit_on_user_error

    with (
        exit_on_user_error("phonemlp-predict"),
        out_of_memory_hint(list(_task_overrides()), key="batch_size"),
    ):
        from phonemlp.prediction import predict as predict_split

        return predict_split(cfg)


def _task_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task)


def command_config(
    program: str, config_name: str, argv: list[str], positional: str | None = None
) -> DictConfig | None:
    """The small commands' arguments, the same way as phonemlp-train's: `key=value` overrides
    composed onto conf/<config_name>.yaml and its typed schema (one optional bare argument sets
    `positional`). Returns None after printing the help (`--help`), which is that YAML: every
    key with its default and its comment."""
    from phonemlp.api import _quote, compose
    from phonemlp.errors import PhonemlpError

    if any(arg in ("-h", "--help") for arg in argv):
        print(command_help(program, config_name))
        return None
    overrides, bare = [], None
    for arg in argv:
        if "=" in arg and not arg.startswith("-"):
            overrides.append(arg)
        elif positional is None or bare is not None or arg.startswith("-"):
            raise PhonemlpError(f"unexpected argument '{arg}'; the arguments are key=value "
                                f"(`{program} --help` lists the keys)")  # fmt: skip
        else:
            bare = arg
            overrides.append(f"{positional}={_quote(arg)}")
    return compose(config_name, overrides)


def command_help(program: str, config_name: str) -> str:
    """`--help` of a small command: its usage line and its config file, comments included."""
    from importlib import resources

    text = resources.files("phonemlp.conf").joinpath(f"{config_name}.yaml").read_text()
    lines, in_defaults = [], False
    for line in text.splitlines():
        in_defaults = line.startswith("defaults:") or (in_defaults and line.startswith("  -"))
        if not in_defaults:
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    return "usage: " + "\n".join(lines).strip()
