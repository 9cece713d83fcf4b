"""The training loop: the run's moving parts (`Trainer`) and one epoch over the training frames.

Nothing in a training step waits for the device: losses and accuracy accumulate in device
tensors, the learning rate is a Python number, and the fused optimizer takes the grad scaler's
inf check on the device. The host reads the device every `SYNC_EVERY` batches (progress bar,
finite-loss check), when saving, and at the end of the epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from phonemlp.augment import augment, augment_enabled
from phonemlp.data.windows import WindowedSplit
from phonemlp.errors import PhonemlpError
from phonemlp.model import MLP, Dropout
from phonemlp.optim import build_optimizer
from phonemlp.progress import progress_bar
from phonemlp.runtime import autocast
from phonemlp.schedule import Schedule
from phonemlp.stopping import StopOnSignal

SYNC_EVERY = 50  # batches between the host's reads of the running loss (bar, finite check)


class Diverged(PhonemlpError):
    """The loss or the weights stopped being finite; nothing of that state is saved."""


@dataclass
class Progress:
    """Where a run is: epoch, global step, history, best so far, and an unfinished epoch."""

    epoch: int = 0  # the epoch in progress (partial) or the last one completed
    step: int = 0  # optimizer steps so far (drives the lr schedule)
    history: list[dict[str, float]] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = 0
    partial: dict[str, Any] | None = None  # batch, loss_sum, correct, frames, seconds

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "best_dev_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "partial_epoch": self.partial,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.step = state["epoch"], state["step"]
        self.history = list(state["history"])
        self.best_acc, self.best_epoch = state["best_dev_acc"], state["best_epoch"]
        self.partial = state.get("partial_epoch")


class Trainer:
    """The run's moving parts: model, EMA, optimizer, schedule, grad scaler, precision, progress.

    `state_dict()` is exactly what a checkpoint holds of them (and `load_state_dict` restores
    a run from it, RNG states included).
    """

    def __init__(
        self, cfg: DictConfig, model: MLP, precision: str, feature_dim: int, steps_per_epoch: int
    ) -> None:
        self.cfg = cfg
        self.feature_dim = feature_dim  # mel bands, for the augmentations
        self.model = model
        self.device = next(model.parameters()).device
        self.precision = precision
        self.ema = None
        if cfg.ema > 0:
            self.ema = AveragedModel(
                model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True
            )
        self.optimizer = build_optimizer(cfg.optimizer, model, cfg.no_decay_norm_bias)
        self.schedule = Schedule(
            cfg.scheduler, self.optimizer, steps_per_epoch, cfg.epochs, cfg.time_budget_s
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.progress = Progress()
        self._finite_at_step = -1  # the optimizer step whose weights were last found finite
        self.augmenting = augment_enabled(cfg.augment)
        if cfg.compile:  # CUDA graphs on a GPU (no per-kernel launch cost); names unchanged
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            model.compile(mode=mode)

    @property
    def evaluated(self) -> torch.nn.Module:
        """The weights that are scored, kept in best.pt and predicted with (EMA when on)."""
        return self.model if self.ema is None else self.ema.module

    def state_dict(self) -> dict[str, Any]:
        cuda = self.device.type == "cuda"
        return {
            **self.progress.state_dict(),
            "model": self.evaluated.state_dict(),
            "train_model": None if self.ema is None else self.model.state_dict(),
            "ema_state": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if cuda else None,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["train_model"] or state["model"])
        if self.ema is not None and state.get("ema_state") is not None:
            self.ema.load_state_dict(state["ema_state"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.progress.load_state_dict(state)

    def latest_loss(self) -> float:
        """The loss the run stands on: the unfinished epoch's so far, else the last epoch's
        train and dev loss (their sum: non-finite when either is)."""
        partial, history = self.progress.partial, self.progress.history
        if partial and partial.get("frames"):
            return partial["loss_sum"] / partial["frames"]
        if history:
            return history[-1]["train_loss"] + history[-1].get("dev_loss", 0.0)
        return 0.0

    def check_finite(self, loss: float | None = None) -> None:
        """Raise Diverged unless the loss (when given), every weight and the EMA are finite.
        The weights are scanned once per optimizer step (an epoch end saves last.pt and
        best.pt from the same weights)."""
        weights_ok = self._finite_at_step == self.progress.step
        if not weights_ok:
            tensors = [*self.model.parameters()]
            if self.ema is not None:
                tensors += [*self.ema.module.parameters()]
            weights_ok = bool(torch.stack([t.detach().isfinite().all() for t in tensors]).all())
            if weights_ok:
                self._finite_at_step = self.progress.step
        if weights_ok and (loss is None or math.isfinite(loss)):
            return
        what = f"the loss ({loss})" if weights_ok else "the weights"
        where = f"epoch {self.progress.epoch}"
        if self.progress.partial:
            where += f" by batch {self.progress.partial['batch']}"
        raise Diverged(
            f"training diverged: {what} became non-finite in {where}; nothing of that state "
            f"was saved; try a lower optimizer.lr (now {self.cfg.optimizer.lr}), grad_clip=1.0 "
            "or precision=fp32"
        )

    def set_dropout(self, epoch: int) -> None:
        """The dropout schedule: model.dropout at the first epoch, linearly to dropout_final."""
        if self.cfg.dropout_final is None:
            return
        progress = (epoch - 1) / max(1, self.cfg.epochs - 1)
        start = self.cfg.model.dropout
        rate = start + (self.cfg.dropout_final - start) * progress
        for module in self.model.modules():
            if isinstance(module, Dropout):
                module.p = rate

    def loss(self, windows: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The batch's loss (label smoothing, R-Drop) and its logits, under autocast."""
        smoothing, alpha = self.cfg.label_smoothing, self.cfg.rdrop_alpha
        with autocast(self.device, self.precision):
            logits = self.model(windows).float()
            loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
            if alpha > 0:  # R-Drop: a second dropout pass, pulled towards the first
                twin = self.model(windows).float()
                loss = (loss + F.cross_entropy(twin, labels, label_smoothing=smoothing)) / 2
                loss = loss + alpha * symmetric_kl(logits, twin)
        return loss, logits

    def step(self, windows: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One optimizer step on a batch; returns its loss and logits (still on the device)."""
        self.schedule.set_lr(self.progress.step)
        if self.augmenting:
            windows = augment(windows, self.feature_dim, self.cfg.augment)
        loss, logits = self.loss(windows, labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.progress.step += 1
        return loss, logits


def symmetric_kl(logits: torch.Tensor, twin: torch.Tensor) -> torch.Tensor:
    """Mean symmetric KL divergence between two predictions of the same batch (R-Drop)."""
    log_p, log_q = logits.log_softmax(1), twin.log_softmax(1)
    forward = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    backward = F.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
    return (forward + backward) / 2


class EpochTotals:
    """Running loss and accuracy of an epoch, summed on the device (read only when asked)."""

    def __init__(self, device: torch.device, partial: dict[str, Any] | None) -> None:
        partial = partial or {"batch": 0, "loss_sum": 0.0, "correct": 0, "frames": 0,
                              "seconds": 0.0}  # fmt: skip
        self.first_batch = partial["batch"]
        self.loss_sum = torch.tensor(partial["loss_sum"], device=device, dtype=torch.float64)
        self.correct = torch.tensor(partial["correct"], device=device, dtype=torch.int64)
        self.frames = partial["frames"]
        self.started = time.perf_counter() - partial["seconds"]

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss_sum += loss.detach() * len(labels)
        self.correct += (logits.detach().argmax(1) == labels).sum()
        self.frames += len(labels)

    def mean_loss(self) -> float:
        return self.loss_sum.item() / max(1, self.frames)

    def partial(self, batch: int) -> dict[str, Any]:
        """What last.pt keeps of an unfinished epoch to resume it exactly."""
        return {"batch": batch, "loss_sum": self.loss_sum.item(), "correct": self.correct.item(),
                "frames": self.frames, "seconds": time.perf_counter() - self.started}  # fmt: skip


def train_epoch(
    trainer: Trainer, train_set: WindowedSplit, save: Callable[[str], None], stop: StopOnSignal
) -> dict[str, float] | None:
    """One pass over the training frames in the epoch's seeded order, from where it stopped.

    `save(name)` writes a checkpoint. Returns the epoch's metrics row, or None when a signal
    stopped it (after saving last.pt).
    """
    cfg, progress, device = trainer.cfg, trainer.progress, trainer.device
    epoch = progress.epoch
    trainer.model.train()
    trainer.set_dropout(epoch)
    generator = torch.Generator(device=device).manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(train_set.frames, generator=generator, device=device)
    total = train_set.num_batches(cfg.batch_size, cfg.limit_batches)
    totals = EpochTotals(device, progress.partial)
    batches = train_set.batches(cfg.batch_size, order, cfg.limit_batches, first=totals.first_batch)
    bar = progress_bar(batches, total, totals.first_batch, f"epoch {epoch}/{cfg.epochs}")
    every = cfg.checkpoint_every_batches
    for batch, (windows, labels) in enumerate(bar, start=totals.first_batch):
        loss, logits = trainer.step(windows, labels)
        totals.add(loss, logits, labels)
        done = batch + 1
        if trainer.schedule.budget_spent():
            break
        if stop or (every and done % every == 0 and done < total):
            progress.partial = totals.partial(done)
            save("last.pt")  # checks that the loss and the weights are finite first
            if stop:
                return None
        if done % SYNC_EVERY == 0 or done == total:
            mean_loss = totals.mean_loss()
            if not math.isfinite(mean_loss):
                progress.partial = {"batch": done}
                trainer.check_finite(mean_loss)
            accuracy = totals.correct.item() / totals.frames
            bar.set_postfix(loss=f"{mean_loss:.3f}", acc=f"{accuracy:.3f}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - totals.started
    return {
        "epoch": epoch,
        "lr": trainer.optimizer.param_groups[0]["lr"],
        "train_loss": totals.mean_loss(),
        "train_acc": totals.correct.item() / max(1, totals.frames),
        "epoch_s": seconds,
        "train_frames": totals.frames,
        "train_frames_per_s": totals.frames / seconds,
    }
