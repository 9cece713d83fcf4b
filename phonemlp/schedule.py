"""Learning-rate schedules with optional linear warmup, set on the optimizer every batch.

One small class instead of chained torch schedulers: every kind, plateau included, is a
multiplier on `optimizer.lr` that depends on the batch count (and, for plateau, on the dev
accuracies seen), and its whole state is a plain dict for exact resume.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch


class Schedule:
    """lr(step) = base_lr * warmup(step) * decay(step); `step` counts batches from 0."""

    def __init__(
        self,
        cfg: Any,
        optimizer: torch.optim.Optimizer,
        steps_per_epoch: int,
        epochs: int,
        budget_s: float = 0.0,
    ) -> None:
        self.cfg = cfg
        self.optimizer = optimizer
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total_steps = max(1, steps_per_epoch * epochs)
        self.base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        for group, lr in zip(optimizer.param_groups, self.base_lrs, strict=True):
            group["initial_lr"] = lr
        self.plateau_scale = 1.0
        self.best_metric = -math.inf
        self.bad_epochs = 0
        self.budget_s = budget_s  # > 0: the run's horizon is this many wall-clock seconds
        self.elapsed_before = 0.0  # seconds spent in earlier sessions of a resumed run
        self.clock = time.perf_counter()

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.clock

    def budget_spent(self) -> bool:
        return self.budget_s > 0 and self.elapsed() >= self.budget_s

    def factor(self, step: int) -> float:
        cfg = self.cfg
        epoch = step / self.steps_per_epoch
        warmup_steps = cfg.get("warmup_epochs", 0) * self.steps_per_epoch
        warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        if cfg.name == "constant":
            decay = 1.0
        elif cfg.name == "step":
            decay = cfg.gamma ** math.floor(epoch / cfg.step_epochs)
        elif cfg.name == "exponential":
            decay = cfg.gamma**epoch
        elif cfg.name == "cosine":
            if self.budget_s > 0:  # the horizon is the time budget
                progress = min(1.0, self.elapsed() / self.budget_s)
            else:
                span = max(1.0, self.total_steps - warmup_steps)
                progress = min(1.0, max(0.0, step - warmup_steps) / span)
            floor = cfg.min_lr_ratio
            decay = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        else:  # plateau
            decay = max(self.plateau_scale, cfg.min_lr_ratio)
        return warmup * decay

    def set_lr(self, step: int) -> float:
        """Set every parameter group's lr for batch `step`; returns the first group's."""
        factor = self.factor(step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        return self.optimizer.param_groups[0]["lr"]

    def end_epoch(self, dev_acc: float) -> None:
        """Plateau bookkeeping: shrink the lr after `patience` epochs without improvement."""
        if self.cfg.name != "plateau":
            return
        if dev_acc > self.best_metric + self.cfg.threshold:
            self.best_metric, self.bad_epochs = dev_acc, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.cfg.patience:
                self.plateau_scale *= self.cfg.factor
                self.bad_epochs = 0

    def state_dict(self) -> dict[str, float]:
        return {
            "plateau_scale": self.plateau_scale,
            "best_metric": self.best_metric,
            "bad_epochs": self.bad_epochs,
            "elapsed": self.elapsed(),
        }

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.plateau_scale = float(state["plateau_scale"])
        self.best_metric = float(state["best_metric"])
        self.bad_epochs = int(state["bad_epochs"])
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self.clock = time.perf_counter()
