"""Training one model, top to bottom: set up, data, model, fit, finish.

`train(cfg, run_dir, overrides)` does the work; `phonemlp.train([...])` (api.py) composes the
config and records the run, and `phonemlp-train` (cli.py) is Hydra's command line over that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from phonemlp.checkpoint import Checkpoints, adopt_run
from phonemlp.data.splits import TrainingData, load_training_data, locate_data
from phonemlp.evaluate import evaluate
from phonemlp.loop import Trainer, train_epoch
from phonemlp.model import build_model
from phonemlp.phonemes import CLASSES, NUM_CLASSES
from phonemlp.records import print_summary, write_metrics, write_summary
from phonemlp.reports import write_best_model_reports
from phonemlp.runtime import choose_precision, configure, resolve_device, seed_everything
from phonemlp.stopping import StopOnSignal
from phonemlp.tracking import Tracker

log = logging.getLogger("phonemlp")

EpochCallback = Callable[[int, dict[str, float]], None]


def train(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str],
    resumed: dict[str, Any] | None,
    tracker: Tracker,
    on_epoch: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train one model as `cfg` says, into `run_dir`; returns the run's summary.

    `resumed` is the checkpoint to continue from; `tracker` logs to wandb; `on_epoch(epoch,
    row)` runs after each epoch's checkpoints are saved (a search reports to its pruner)."""
    device = resolve_device(cfg.device)
    precision, why = choose_precision(cfg.precision, device)
    configure(device, cfg.threads)
    seed_everything(cfg.seed)
    log.info(f"device {device}, precision {precision} ({why})")

    root, dim = locate_data(cfg.data)  # the model is sized (and refused) before data is read
    model = build_model(cfg.model, (2 * cfg.context + 1) * dim, NUM_CLASSES)
    log.info(f"model: widths {model.widths}, {model.num_params:,} parameters")
    tracker.describe(model.num_params)
    data = load_training_data(cfg, root, dim, device, precision)

    steps = data.train.num_batches(cfg.batch_size, cfg.limit_batches)
    trainer = Trainer(cfg, model.to(device), precision, dim, steps)
    checkpoints = Checkpoints(
        run_dir / "checkpoints", checkpoint_static(cfg, overrides, model, data)
    )
    if resumed is not None:
        trainer.load_state_dict(resumed)
        adopt_run(Path(cfg.resume), run_dir)
        if trainer.progress.history:
            write_metrics(run_dir, trainer.progress.history)
        log.info(f"resumed from {cfg.resume} at {describe_position(trainer)}")

    best_predictions = fit(trainer, data, checkpoints, tracker, on_epoch)
    summary = write_summary(run_dir, trainer, overrides, data.root, device)
    tracker.log_reports(write_best_model_reports(run_dir, trainer, data, best_predictions))
    tracker.finish(summary)
    print_summary(summary, trainer.progress.history, run_dir)
    return summary


def fit(
    trainer: Trainer,
    data: TrainingData,
    checkpoints: Checkpoints,
    tracker: Tracker,
    on_epoch: EpochCallback | None,
) -> torch.Tensor | None:
    """The epochs: train, evaluate, record, checkpoint. Returns the best epoch's dev
    predictions when this process made them (for the reports)."""
    cfg, progress = trainer.cfg, trainer.progress
    run_dir = checkpoints.folder.parent
    best_predictions = None
    with StopOnSignal() as stop:
        first = progress.epoch if progress.partial else progress.epoch + 1
        for epoch in range(first, cfg.epochs + 1):
            progress.epoch = epoch
            row = train_epoch(
                trainer, data.train, lambda name: checkpoints.save(name, trainer), stop
            )
            if row is None:
                batch = progress.partial["batch"]
                log.info(f"stopped by {stop.signal_name} in epoch {epoch} after batch {batch}; "
                         f"checkpoints/last.pt is saved. Resume with:\n"
                         f"  phonemlp-train resume={run_dir}")  # fmt: skip
                raise SystemExit(128 + stop.signal_number)
            row["dev_loss"], row["dev_acc"], predictions = evaluate(
                trainer.evaluated, data.dev, cfg.eval_batch_size, trainer.precision
            )
            progress.history.append(row)
            progress.partial = None
            trainer.check_finite(trainer.latest_loss())  # a NaN dev loss is divergence too
            trainer.schedule.end_epoch(row["dev_acc"])
            improved = row["dev_acc"] > progress.best_acc
            if improved:
                progress.best_acc, progress.best_epoch = row["dev_acc"], epoch
                best_predictions = predictions  # no second dev pass for the reports
            write_metrics(run_dir, progress.history)
            tracker.log(row)
            checkpoints.save("last.pt", trainer)
            if improved:
                checkpoints.save("best.pt", trainer)
            if cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0:
                checkpoints.save(f"epoch_{epoch}.pt", trainer)
            log.info(epoch_line(row, cfg.epochs, improved))
            if on_epoch is not None:
                on_epoch(epoch, dict(row))  # may raise RunPruned: the checkpoints are kept
            if trainer.schedule.budget_spent():
                log.info(f"time budget of {cfg.time_budget_s:g}s spent after epoch {epoch}")
                break
    return best_predictions


def checkpoint_static(
    cfg: DictConfig, overrides: list[str], model: torch.nn.Module, data: TrainingData
) -> dict[str, Any]:
    """What every checkpoint holds besides the trainer's state: all that prediction needs."""
    return {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "overrides": overrides,
        "classes": list(CLASSES),
        "context": cfg.context,
        "feature_dim": data.dim,
        "input_dim": data.train.input_dim,
        "widths": model.widths,
        "params": model.num_params,
        "normalize": cfg.data.normalize,
        "norm_stats": None if data.stats is None else [torch.from_numpy(s) for s in data.stats],
        "data_root": str(data.root),
        **data.label_counts.to_checkpoint(),  # transition and class counts for smooth=hmm
    }


def describe_position(trainer: Trainer) -> str:
    progress = trainer.progress
    if progress.partial:
        return f"epoch {progress.epoch} batch {progress.partial['batch']}"
    return f"epoch {progress.epoch} (complete)"


def epoch_line(row: dict[str, float], epochs: int, improved: bool) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}  lr {row['lr']:.2e}  "
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
        f"dev loss {row['dev_loss']:.4f} acc {row['dev_acc']:.4f}  "
        f"{row['epoch_s']:.1f}s  {row['train_frames_per_s']:,.0f} frames/s"
        + ("  *best*" if improved else "")
    )
