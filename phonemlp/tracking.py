"""Experiment tracking with wandb: offline by default (files in the run folder, no login).

Each job is its own wandb run, closed before the next job starts. In a multirun the runs are
grouped by the sweep folder (unless wandb.group is set), so a sweep is one group in wandb.
The tracker also adds the model size to the run's status record (status.json).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from phonemlp.records import update_status

log = logging.getLogger("phonemlp")

SUMMARY_KEYS = ("params", "best_dev_acc", "best_epoch", "epochs", "train_frames_per_s")

_open: Tracker | None = None  # the tracker of the job in progress, closed by finish_open_run


def sweep_group(cfg: DictConfig) -> str | None:
    """wandb.group, else in a multirun the sweep folder (`<date>/<time>` by default)."""
    if cfg.wandb.group:
        return str(cfg.wandb.group)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    sweep = Path(HydraConfig.get().sweep.dir).resolve()
    return f"{sweep.parent.name}/{sweep.name}"


class Tracker:
    """One wandb run per training run; a no-op with wandb.mode=disabled."""

    def __init__(self, cfg: DictConfig, run_dir: Path, params: int) -> None:
        global _open
        self.run = None
        update_status(run_dir, params=params)
        if cfg.wandb.mode == "disabled":
            return
        import wandb

        finish_open_run()  # a job that ended without closing its run
        group = sweep_group(cfg)
        self.run = wandb.init(
            mode=cfg.wandb.mode,
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            group=group,
            tags=list(cfg.wandb.tags),
            name=f"{run_dir.parent.name}/{run_dir.name}",
            dir=str(run_dir),
            config={**OmegaConf.to_container(cfg, resolve=True), "params": params},
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )
        _open = self
        update_status(run_dir, wandb_id=self.run.id, wandb_group=group)
        where = f" in group {group}" if group else ""
        log.info(f"wandb: run {self.run.id} ({cfg.wandb.mode}){where} in {run_dir / 'wandb'}")

    def log(self, row: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log(row, step=int(row["epoch"]))

    def log_reports(self, paths: dict[str, Path]) -> None:
        """The run's reports (phonemlp.reports.write_reports): images and tables."""
        if self.run is not None and paths:
            from phonemlp.reports import log_to_wandb

            log_to_wandb(self.run, paths)

    def finish(self, summary: dict[str, Any] | None) -> None:
        """Close the wandb run, with the run's summary when it ended normally (else failed)."""
        global _open
        if _open is self:
            _open = None
        if self.run is None:
            return
        if summary is not None:
            for key in SUMMARY_KEYS:
                self.run.summary[key] = summary[key]
        self.run.finish(exit_code=0 if summary is not None else 1)
        self.run = None


def finish_open_run() -> None:
    """Close, as failed, the wandb run of a job that ended without closing it."""
    if _open is not None:
        _open.finish(None)
