"""Experiment tracking with wandb: offline by default (files in the run folder, no login)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("phonemlp")


class Tracker:
    """One wandb run per training run; a no-op with wandb.mode=disabled."""

    def __init__(self, cfg: DictConfig, run_dir: Path, params: int) -> None:
        self.run = None
        if cfg.wandb.mode == "disabled":
            return
        import wandb

        self.run = wandb.init(
            mode=cfg.wandb.mode,
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            group=cfg.wandb.group,
            tags=list(cfg.wandb.tags),
            name=f"{run_dir.parent.name}/{run_dir.name}",
            dir=str(run_dir),
            config={**OmegaConf.to_container(cfg, resolve=True), "params": params},
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )

    def log(self, row: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log(row, step=int(row["epoch"]))

    def finish(self, summary: dict[str, Any]) -> None:
        if self.run is None:
            return
        for key in ("params", "best_dev_acc", "best_epoch", "epochs", "train_frames_per_s"):
            self.run.summary[key] = summary[key]
        self.run.finish()
        self.run = None
