"""Experiment tracking with wandb: offline by default (files in the run folder, no login).

Each run is its own wandb run, closed when the run ends (normally or not). wandb starts in a
background thread as the run starts, while the data loads and the first epoch trains, so its
start-up (seconds) is not added to the run's time. In a Hydra sweep the runs are grouped by
the sweep folder (unless wandb.group is set). The tracker also adds the model size to status.json.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from phonemlp.records import update_status

log = logging.getLogger("phonemlp")

SUMMARY_KEYS = ("params", "best_dev_acc", "best_epoch", "epochs", "train_frames_per_s")


class Tracker:
    """One wandb run per training run; a no-op with wandb.mode=disabled. Use it with `with`."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.run: Any = None
        self.error: BaseException | None = None
        self.run_dir = run_dir
        self.params: int | None = None
        self.thread = None
        if cfg.wandb.mode == "disabled":
            return
        settings = {
            "mode": cfg.wandb.mode,
            "project": cfg.wandb.project,
            "entity": cfg.wandb.entity,
            "group": cfg.wandb.group,
            "tags": list(cfg.wandb.tags),
            "name": f"{run_dir.parent.name}/{run_dir.name}",
            "dir": str(run_dir),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        self.thread = threading.Thread(target=self._start, args=(settings, run_dir), daemon=True)
        self.thread.start()

    def _start(self, settings: dict[str, Any], run_dir: Path) -> None:
        try:
            import wandb

            self.run = wandb.init(
                **settings,
                reinit="finish_previous",
                settings=wandb.Settings(silent=True, console="off"),
            )
        except Exception as error:  # tracking must never lose the run itself
            self.error = error
            return
        update_status(run_dir, wandb_id=self.run.id, wandb_group=settings["group"])
        group = settings["group"]
        where = f" in group {group}" if group else ""
        log.info(f"wandb: run {self.run.id} ({settings['mode']}){where} in {run_dir / 'wandb'}")

    def describe(self, params: int) -> None:
        """The model's size, for status.json now and the wandb run's config."""
        self.params = params
        update_status(self.run_dir, params=params)

    def _ready(self) -> Any:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
            if self.error is not None:
                log.warning(f"wandb: could not start ({self.error}); the run goes on untracked")
            elif self.params is not None:
                self.run.config.update({"params": self.params}, allow_val_change=True)
        return self.run

    def log(self, row: dict[str, Any]) -> None:
        if self._ready() is not None:
            self.run.log(row, step=int(row["epoch"]))

    def log_reports(self, paths: dict[str, Path]) -> None:
        """The run's reports (phonemlp.reports.write_reports): images and tables."""
        if self._ready() is not None and paths:
            from phonemlp.reports import log_to_wandb

            log_to_wandb(self.run, paths)

    def finish(self, summary: dict[str, Any] | None) -> None:
        """Close the wandb run, with the run's summary when it ended normally (else failed)."""
        if self._ready() is None:
            return
        if summary is not None:
            for key in SUMMARY_KEYS:
                self.run.summary[key] = summary[key]
        self.run.finish(exit_code=0 if summary is not None else 1)
        self.run = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish(None)  # a run that ended early: closed as failed (a no-op after finish)
