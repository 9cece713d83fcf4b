"""phonemlp-train: the Hydra entry point. Compose the config, build data and model, train.

phonemlp-train                                   # the embedded demo corpus
phonemlp-train data.root=/data/hw1p2 model=pyramid context=30
phonemlp-train -m model=pyramid,diamond context=20,30 data.fraction=0.1
phonemlp-train --cfg job                         # print the composed config
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from phonemlp.atomic import atomic_path, write_text
from phonemlp.augment import augment, augment_enabled, check_augment
from phonemlp.checkpoint import load_checkpoint, save_checkpoint
from phonemlp.data.corpus import feature_dim
from phonemlp.data.splits import corpus_root, load_split, storage_options, training_subset
from phonemlp.data.windows import WindowedSplit
from phonemlp.ema import make_ema
from phonemlp.errors import PhonemlpError, exit_on_user_error
from phonemlp.evaluate import evaluate
from phonemlp.model import Dropout, autocast_dtype, build_model
from phonemlp.phonemes import CLASSES, NUM_CLASSES
from phonemlp.records import run_recorded
from phonemlp.reports import write_best_model_reports
from phonemlp.resources import check_memory
from phonemlp.runtime import (
    autocast,
    configure,
    resolve_device,
    resolve_precision,
    seed_everything,
)
from phonemlp.schedule import Schedule
from phonemlp.smoothing import count_labels
from phonemlp.tracking import Tracker

log = logging.getLogger("phonemlp")

MAX_CONTEXT = 50


def check_settings(cfg: DictConfig) -> None:
    """Refuse out-of-range top-level settings before any work, naming the setting."""
    if not isinstance(cfg.context, int) or not 0 <= cfg.context <= MAX_CONTEXT:
        raise PhonemlpError(f"context={cfg.context} must be an integer from 0 to {MAX_CONTEXT}")
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise PhonemlpError(f"{key}={cfg[key]} must be a positive integer")
    for key in ("checkpoint_every", "checkpoint_every_batches", "limit_batches", "threads"):
        if not isinstance(cfg[key], int) or cfg[key] < 0:
            raise PhonemlpError(f"{key}={cfg[key]} must be an integer >= 0")
    for key in ("label_smoothing", "grad_clip"):
        if not isinstance(cfg[key], int | float) or isinstance(cfg[key], bool):
            raise PhonemlpError(f"{key}={cfg[key]!r} must be a number")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise PhonemlpError(f"label_smoothing={cfg.label_smoothing} must be in [0, 1)")
    if cfg.grad_clip < 0:
        raise PhonemlpError(f"grad_clip={cfg.grad_clip} must be >= 0 (0 = off)")
    check_augment(cfg.augment)
    if cfg.rdrop_alpha < 0 or cfg.time_budget_s < 0:
        raise PhonemlpError("rdrop_alpha and time_budget_s must be >= 0")
    if cfg.dropout_final is not None and not 0.0 <= cfg.dropout_final < 1.0:
        raise PhonemlpError(f"dropout_final={cfg.dropout_final} must be in [0, 1)")
    if cfg.wandb.mode not in ("offline", "online", "disabled"):
        raise PhonemlpError(
            f"wandb.mode={cfg.wandb.mode!r} is not one of offline, online, disabled"
        )


def build_optimizer(
    optimizer_cfg: DictConfig, model: torch.nn.Module, no_decay_norm_bias: bool = False
) -> torch.optim.Optimizer:
    """The torch optimizer the `optimizer` group names; bad values give one clear line.

    With `no_decay_norm_bias`, weight decay applies to the weight matrices only.
    """
    parameters: Any = model.parameters()
    if no_decay_norm_bias:
        matrices = [p for p in model.parameters() if p.ndim >= 2]
        others = [p for p in model.parameters() if p.ndim < 2]
        parameters = [{"params": matrices}, {"params": others, "weight_decay": 0.0}]
    try:
        factory = instantiate(optimizer_cfg)
        options = {}
        if "fused" not in optimizer_cfg and "fused" in inspect.signature(factory.func).parameters:
            options["fused"] = True  # one kernel for the whole update, on CPU and GPU
        return factory(parameters, **options)
    except Exception as error:  # torch validates lr, momentum, betas... with ValueError
        cause = error.__cause__ or error
        raise PhonemlpError(f"optimizer: {cause}; check optimizer.* settings") from None


def unfinished_run_like(run_dir: Path, overrides: list[str]) -> Path | None:
    """The newest run beside this one (same outputs tree) with the same overrides, not finished.

    A run is unfinished when it has checkpoints/last.pt but no summary.json and was not
    continued elsewhere (continued.json, written by the run that resumed it).
    """
    tree = run_dir.parents[1] if len(run_dir.parents) > 1 else run_dir.parent
    candidates = []
    for last in [*tree.glob("*/*/checkpoints/last.pt"), *tree.glob("*/checkpoints/last.pt")]:
        folder = last.parents[1]
        recorded = folder / ".hydra" / "overrides.yaml"
        done = (folder / "summary.json").exists() or (folder / "continued.json").exists()
        if folder == run_dir or done or not recorded.is_file():
            continue
        theirs = [o for o in OmegaConf.load(recorded) if not str(o).startswith("resume=")]
        if sorted(theirs) == sorted(overrides):
            candidates.append((last.stat().st_mtime, folder))
    return max(candidates)[1] if candidates else None


def resumed_config(cfg: DictConfig) -> tuple[DictConfig, dict[str, Any] | None]:
    """With `resume`, the checkpoint's run config plus this command's overrides."""
    if not cfg.resume:
        return cfg, None
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
    if cfg.resume == "auto":
        found = unfinished_run_like(Path(HydraConfig.get().runtime.output_dir), overrides)
        if found is None:
            log.info("resume=auto: no unfinished run with the same overrides; starting afresh")
            cfg.resume = None
            return cfg, None
        log.info(f"resume=auto: continuing {found}")
        cfg.resume = str(found)
    checkpoint = load_checkpoint(cfg.resume)
    composed = hydra.compose(config_name="config", overrides=checkpoint["overrides"] + overrides)
    composed.resume = cfg.resume
    return composed, checkpoint


def train(cfg: DictConfig) -> float:
    """Train one model as `cfg` says; returns the best dev accuracy."""
    cfg, resumed = resumed_config(cfg)
    check_settings(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("resume=")]
    if resumed is not None:
        overrides = resumed["overrides"] + overrides
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    configure(device, cfg.threads)
    seed_everything(cfg.seed)

    root = corpus_root(cfg.data.root, cfg.data.demo_seed)
    log.info(f"data: {root}  (normalize={cfg.data.normalize}, fraction={cfg.data.fraction})")
    # the model is sized (and refused if too large) before any data is read
    dim = feature_dim(root, cfg.data.train_split)
    input_dim = (2 * cfg.context + 1) * dim
    model = build_model(cfg.model, input_dim, NUM_CLASSES)
    log.info(f"model: widths {model.widths}, {model.num_params:,} parameters, input {input_dim}")

    check_memory(root, [cfg.data.train_split, cfg.data.dev_split], cfg.data.fraction)
    subset = training_subset(root, cfg.data.train_split, cfg.data.fraction, cfg.seed)
    storage = storage_options(cfg.data)  # the prepared-split cache (data/cache.py)
    train_data, stats = load_split(
        root, cfg.data.train_split, cfg.data.normalize, utterances=subset, **storage
    )
    dev_data, _ = load_split(root, cfg.data.dev_split, cfg.data.normalize, stats=stats, **storage)
    for data in (train_data, dev_data):
        if data.feature_dim != dim:
            raise PhonemlpError(
                f"{root / data.name / 'mfcc'}: feature dimension {data.feature_dim} differs from "
                f"{dim} in {root / cfg.data.train_split / 'mfcc'}; all splits must match"
            )
    batch_dtype = autocast_dtype(precision) or torch.float32  # the model's input dtype
    train_set = WindowedSplit(train_data, cfg.context, device, batch_dtype)
    dev_set = WindowedSplit(dev_data, cfg.context, device, batch_dtype)
    log.info(
        f"train: {len(train_data.names):,} utterances, {train_data.frames:,} frames; "
        f"dev: {len(dev_data.names):,} utterances, {dev_data.frames:,} frames; "
        f"feature dim {dim}, device {device}, precision {precision}"
    )
    if train_data.frames == 0 or dev_data.frames == 0:
        raise PhonemlpError(f"{root}: the train or dev split has no frames")
    label_counts = count_labels(train_data.labels, train_data.offsets, NUM_CLASSES)  # smooth=hmm
    dev_names, dev_offsets = dev_data.names, dev_data.offsets  # for the reports
    del train_data, dev_data
    model.to(device)
    ema = make_ema(model, cfg.ema)
    if cfg.get("compile", False):
        model.compile()  # compiles the forward; parameter names and checkpoints are unchanged
    evaluated = model if ema is None else ema.module  # the weights that are scored and kept
    optimizer = build_optimizer(cfg.optimizer, model, cfg.no_decay_norm_bias)
    steps_per_epoch = train_set.num_batches(cfg.batch_size, cfg.limit_batches)
    schedule = Schedule(cfg.scheduler, optimizer, steps_per_epoch, cfg.epochs, cfg.time_budget_s)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    state = RunState()
    if resumed is not None:
        model.load_state_dict(resumed["train_model"] or resumed["model"])
        if ema is not None and resumed.get("ema_state") is not None:
            ema.load_state_dict(resumed["ema_state"])
        optimizer.load_state_dict(resumed["optimizer"])
        schedule.load_state_dict(resumed["schedule"])
        scaler.load_state_dict(resumed["scaler"])
        torch.set_rng_state(resumed["rng"]["torch"])
        if device.type == "cuda" and resumed["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(resumed["rng"]["cuda"])
        state = RunState.from_checkpoint(resumed)
        source = Path(cfg.resume).resolve()
        source = source if source.is_dir() else source.parent.parent
        if (source / ".hydra").is_dir() and source != run_dir:
            write_text(source / "continued.json", json.dumps({"continued_in": str(run_dir)}) + "\n")
        best_before = source / "checkpoints" / "best.pt"  # the best epoch may predate the resume
        if best_before.is_file() and source != run_dir:
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            with atomic_path(run_dir / "checkpoints" / "best.pt") as temporary:
                temporary.write_bytes(best_before.read_bytes())
        where = f"epoch {state.epoch}" + (
            f" batch {state.partial['batch']}" if state.partial else " (complete)"
        )
        log.info(f"resumed from {cfg.resume} at {where}")
        if state.history:
            write_metrics(run_dir, state.history)

    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(cfg, run_dir, model.num_params)
    static = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        "overrides": overrides,
        "classes": list(CLASSES),
        "context": cfg.context,
        "feature_dim": dim,
        "input_dim": train_set.input_dim,
        "widths": model.widths,
        "params": model.num_params,
        "normalize": cfg.data.normalize,
        "norm_stats": None if stats is None else [torch.from_numpy(s) for s in stats],
        "data_root": str(root),
        **label_counts.to_checkpoint(),  # transition and class counts for smooth=hmm
    }

    def save(name: str) -> None:
        """Write checkpoints/<name> with everything needed to predict and to resume exactly."""
        payload = {
            **static,
            **state.to_checkpoint(),
            "model": evaluated.state_dict(),
            "train_model": None if ema is None else model.state_dict(),
            "ema_state": None if ema is None else ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
            },
        }
        try:
            save_checkpoint(checkpoints / name, payload)
        except OSError as error:
            raise PhonemlpError(
                f"{checkpoints / name}: could not be written ({error.strerror or error}); the "
                "previous checkpoint there is intact; free disk space and resume from it"
            ) from None

    started = time.perf_counter()
    best_predictions: torch.Tensor | None = None  # dev predictions of best.pt, when made here
    with StopOnSignal() as stop:
        first_epoch = state.epoch if state.partial else state.epoch + 1
        for epoch in range(first_epoch, cfg.epochs + 1):
            state.epoch = epoch
            row = train_epoch(
                cfg,
                model,
                ema,
                optimizer,
                schedule,
                scaler,
                train_set,
                device,
                precision,
                state,
                save,
                stop,
            )
            if row is None:  # stopped by a signal; last.pt holds the epoch so far
                log.info(
                    f"stopped by {stop.signal_name} in epoch {epoch} after batch "
                    f"{state.partial['batch']}; checkpoints/last.pt is saved. Resume with:\n"
                    f"  phonemlp-train resume={run_dir}"
                )
                tracker.finish(None)
                raise SystemExit(128 + stop.signal_number)
            row["dev_loss"], row["dev_acc"], predictions = evaluate(
                evaluated, dev_set, cfg.eval_batch_size, precision
            )
            schedule.end_epoch(row["dev_acc"])
            state.history.append(row)
            state.partial = None
            improved = row["dev_acc"] > state.best_acc
            if improved:
                state.best_acc, state.best_epoch = row["dev_acc"], epoch
                best_predictions = predictions  # the reports' dev predictions, no second pass
            write_metrics(run_dir, state.history)
            tracker.log(row)
            save("last.pt")
            if improved:
                save("best.pt")
            if cfg.checkpoint_every and epoch % cfg.checkpoint_every == 0:
                save(f"epoch_{epoch}.pt")
            log.info(
                f"epoch {epoch}/{cfg.epochs}  lr {row['lr']:.2e}  "
                f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
                f"dev loss {row['dev_loss']:.4f} acc {row['dev_acc']:.4f}  "
                f"{row['epoch_s']:.1f}s  {row['train_frames_per_s']:,.0f} frames/s"
                + ("  *best*" if improved else "")
            )
            if schedule.budget_spent():
                log.info(f"time budget of {cfg.time_budget_s:g}s spent after epoch {epoch}")
                break

    history = state.history
    summary = {
        "params": model.num_params,
        "best_dev_acc": state.best_acc,
        "best_epoch": state.best_epoch,
        "epochs": len(history),
        "train_frames_per_s": (
            sum(r["train_frames"] for r in history) / max(1e-9, sum(r["epoch_s"] for r in history))
            if history
            else 0.0
        ),
        "train_s": sum(r["epoch_s"] for r in history),
        "best_checkpoint": str(checkpoints / "best.pt"),
        "overrides": overrides,
        "wall_s": time.perf_counter() - started,
        "data_root": str(root),
        "device": str(device),
        "precision": precision,
    }
    write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    reports = write_best_model_reports(  # without best_predictions: a pass with best.pt
        run_dir,
        history,
        evaluated,
        dev_set,
        dev_names,
        dev_offsets,
        cfg.eval_batch_size,
        precision,
        best_predictions,
    )
    tracker.log_reports(reports)
    tracker.finish(summary)
    print_summary(summary, history, run_dir)
    return state.best_acc


def symmetric_kl(logits: torch.Tensor, twin: torch.Tensor) -> torch.Tensor:
    """Mean symmetric KL divergence between two predictions of the same batch (R-Drop)."""
    log_p, log_q = logits.log_softmax(1), twin.log_softmax(1)
    forward = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    backward = F.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
    return (forward + backward) / 2


def set_dropout(model: torch.nn.Module, cfg: DictConfig, epoch: int) -> None:
    """The dropout schedule: model.dropout at the first epoch, linearly to dropout_final."""
    if cfg.dropout_final is None:
        return
    progress = (epoch - 1) / max(1, cfg.epochs - 1)
    rate = cfg.model.dropout + (cfg.dropout_final - cfg.model.dropout) * progress
    for module in model.modules():
        if isinstance(module, Dropout):
            module.p = rate


@dataclass
class RunState:
    """Where a run is: epoch, global step, history, best so far, and an unfinished epoch."""

    epoch: int = 0  # the epoch in progress (partial) or the last one completed
    step: int = 0  # optimizer steps so far (drives the lr schedule)
    history: list[dict[str, float]] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = 0
    partial: dict[str, Any] | None = None  # batch, loss_sum, correct, frames, seconds

    def to_checkpoint(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "best_dev_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "partial_epoch": self.partial,
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> RunState:
        return cls(
            epoch=checkpoint["epoch"],
            step=checkpoint["step"],
            history=list(checkpoint["history"]),
            best_acc=checkpoint["best_dev_acc"],
            best_epoch=checkpoint["best_epoch"],
            partial=checkpoint.get("partial_epoch"),
        )


class StopOnSignal:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each batch (main thread only)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_number = 0
        self.previous: dict[int, Any] = {}

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal_number).name

    def __bool__(self) -> bool:
        return self.signal_number != 0

    def _handle(self, number: int, frame: Any) -> None:
        if self.signal_number:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal_number = number
        log.info(f"\n{signal.Signals(number).name}: saving checkpoints/last.pt after this batch")

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self.previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def train_epoch(
    cfg: DictConfig,
    model: torch.nn.Module,
    ema: torch.optim.swa_utils.AveragedModel | None,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    scaler: torch.amp.GradScaler,
    train_set: WindowedSplit,
    device: torch.device,
    precision: str,
    state: RunState,
    save: Callable[[str], None],
    stop: StopOnSignal,
) -> dict[str, float] | None:
    """One pass over the training frames in the epoch's seeded order, from where it stopped.

    Returns the epoch's metrics row, or None when a signal stopped it (after saving last.pt).
    """
    model.train()
    epoch = state.epoch
    set_dropout(model, cfg, epoch)
    augmenting = augment_enabled(cfg.augment)
    generator = torch.Generator(device=device).manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(train_set.frames, generator=generator, device=device)
    total = train_set.num_batches(cfg.batch_size, cfg.limit_batches)
    partial = state.partial or {
        "batch": 0,
        "loss_sum": 0.0,
        "correct": 0,
        "frames": 0,
        "seconds": 0.0,
    }
    first = partial["batch"]
    loss_sum = torch.tensor(partial["loss_sum"], device=device, dtype=torch.float64)
    correct = torch.tensor(partial["correct"], device=device, dtype=torch.int64)
    frames = partial["frames"]
    started = time.perf_counter() - partial["seconds"]
    lr = schedule.set_lr(state.step)

    def check_finite(batch: int) -> float:
        mean_loss = loss_sum.item() / max(1, frames)
        if not math.isfinite(mean_loss):
            raise PhonemlpError(
                f"the training loss became {mean_loss} in epoch {epoch} by batch {batch + 1}; "
                f"checkpoints/last.pt keeps the last good state; try a lower optimizer.lr "
                f"(now {cfg.optimizer.lr}), grad_clip=1.0 or precision=fp32"
            )
        return mean_loss

    def remember(batch: int) -> None:
        state.partial = {
            "batch": batch,
            "loss_sum": loss_sum.item(),
            "correct": correct.item(),
            "frames": frames,
            "seconds": time.perf_counter() - started,
        }

    batches = train_set.batches(cfg.batch_size, order, cfg.limit_batches, first=first)
    bar = tqdm(
        batches,
        total=total,
        initial=first,
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        leave=False,
    )
    for batch, (windows, labels) in enumerate(bar, start=first):
        lr = schedule.set_lr(state.step)
        if augmenting:
            windows = augment(windows, train_set.feature_dim, cfg.augment)
        with autocast(device, precision):
            logits = model(windows)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
            if cfg.rdrop_alpha > 0:  # R-Drop: a second dropout pass, pulled towards the first
                twin = model(windows)
                loss = (
                    loss
                    + F.cross_entropy(twin.float(), labels, label_smoothing=cfg.label_smoothing)
                ) / 2
                loss = loss + cfg.rdrop_alpha * symmetric_kl(logits.float(), twin.float())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if ema is not None:
            ema.update_parameters(model)
        state.step += 1
        loss_sum += loss.detach() * len(labels)
        correct += (logits.argmax(1) == labels).sum()
        frames += len(labels)
        done = batch + 1
        every = cfg.checkpoint_every_batches
        if schedule.budget_spent():
            break
        if stop or (every and done % every == 0 and done < total):
            check_finite(batch)
            remember(done)
            save("last.pt")
            if stop:
                return None
        if batch % 50 == 49 or done == total:
            mean_loss = check_finite(batch)
            bar.set_postfix(
                loss=f"{mean_loss:.3f}", acc=f"{correct.item() / frames:.3f}", lr=f"{lr:.1e}"
            )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": loss_sum.item() / max(1, frames),
        "train_acc": correct.item() / max(1, frames),
        "epoch_s": seconds,
        "train_frames": frames,
        "train_frames_per_s": frames / seconds,
    }


METRIC_COLUMNS = [
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "dev_loss",
    "dev_acc",
    "epoch_s",
    "train_frames_per_s",
]


def write_metrics(run_dir: Path, history: list[dict[str, float]]) -> None:
    """metrics.csv: one row per epoch, rewritten atomically after every epoch."""
    with atomic_path(run_dir / "metrics.csv") as temporary:
        pd.DataFrame(history)[METRIC_COLUMNS].to_csv(temporary, index=False)


def print_summary(summary: dict[str, Any], history: list[dict[str, float]], run_dir: Path) -> None:
    table = pd.DataFrame(history)[
        ["epoch", "train_loss", "train_acc", "dev_loss", "dev_acc", "epoch_s"]
    ]
    log.info("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    log.info(
        f"best dev accuracy {summary['best_dev_acc']:.4f} at epoch {summary['best_epoch']}; "
        f"{summary['params']:,} parameters; {summary['train_frames_per_s']:,.0f} train frames/s\n"
        f"run folder: {run_dir}\n"
        + (
            f"reports:    {run_dir / 'reports'} (per-class and per-speaker dev accuracy, "
            "confusion matrix, learning curves)\n"
            if (run_dir / "reports").is_dir()
            else ""
        )
        + f"predict:    phonemlp-predict ckpt={summary['best_checkpoint']} out=submission.csv"
    )


@hydra.main(version_base="1.3", config_path="pkg://phonemlp.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Train an MLP frame classifier (see README.md; `--cfg job` prints the config)."""
    with exit_on_user_error("phonemlp-train"):
        try:
            return run_recorded(train, cfg, "phonemlp-train")
        except torch.OutOfMemoryError:
            raise PhonemlpError(
                f"out of GPU memory with batch_size={cfg.batch_size}; try a smaller batch_size "
                "(e.g. half), a smaller model, or device=cpu"
            ) from None


if __name__ == "__main__":
    main()
