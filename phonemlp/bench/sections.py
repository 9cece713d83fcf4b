"""The bench's sections, each a method of Bench returning its figures: load, pipeline,
train, predict, memory, starter and accuracy."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from phonemlp.bench.corpus import DEV, TRAIN
from phonemlp.bench.starter import NOT_FOUND, load_starter, starter_script
from phonemlp.bench.timing import (
    BIN,
    endless_batches,
    matmul_flops,
    median,
    run_checked,
    synchronize,
)
from phonemlp.data.corpus import Split
from phonemlp.data.splits import Preparation, load_split
from phonemlp.data.windows import WindowedSplit
from phonemlp.model import autocast_dtype, build_model
from phonemlp.phonemes import NUM_CLASSES
from phonemlp.runtime import autocast, resolve_device, resolve_precision


class Bench:
    """One benchmark run: the config, the corpus, its prepared splits, and the results."""

    def __init__(self, cfg: DictConfig, root: Path, cache_dir: Path, work: Path) -> None:
        self.cfg = cfg
        self.root = root
        self.cache_dir = cache_dir
        self.work = work  # scratch folder for run folders and logs
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.batch_dtype = autocast_dtype(self.precision) or torch.float32
        self.results: dict[str, Any] = {}
        self._peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}

    def load(self, split: str = TRAIN, labelled: bool = True) -> Split:
        return load_split(self.root, split, self.prepared(), labelled)[0]

    def prepared(self, **changes: Any) -> Preparation:
        """The bench's own prepared-split cache, without progress bars."""
        settings = {"cache": True, "cache_dir": self.cache_dir, "progress": False, **changes}
        return Preparation.of(self.cfg.data, **settings)

    def peak(self, dtype: torch.dtype) -> float:
        """This machine's matmul FLOP/s in `dtype`, measured now (and recorded)."""
        flops = matmul_flops(dtype, self.device)
        self._peaks["bf16" if dtype == torch.bfloat16 else "fp32"].append(flops)
        return flops

    @property
    def model_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    # (a) loading ---------------------------------------------------------------------

    def section_load(self) -> dict[str, Any]:
        cfg = self.cfg
        npy = []
        for _ in range(cfg.load.npy_repeats):
            started = time.perf_counter()
            data, _ = load_split(self.root, TRAIN, self.prepared(cache=False))
            npy.append(time.perf_counter() - started)
            del data
        fresh = self.work / "fresh-cache"
        started = time.perf_counter()
        load_split(self.root, TRAIN, self.prepared(cache_dir=fresh))
        build = time.perf_counter() - started
        shutil.rmtree(fresh, ignore_errors=True)
        self.load()  # the bench's own prepared split (built here if not yet)
        cached, placed = [], []
        for _ in range(cfg.repeats):
            started = time.perf_counter()
            data = self.load()
            cached.append(time.perf_counter() - started)
            started = time.perf_counter()
            windows = WindowedSplit(data, cfg.train.context, self.device, self.batch_dtype)
            synchronize(self.device)
            placed.append(time.perf_counter() - started)
            del windows, data
        return {
            "npy_s": median(npy),
            "cache_build_s": build,
            "cache_s": median(cached),
            "speedup": median(npy) / median(cached),
            "place_s": median(placed),
            "rounds": {"npy_s": npy, "cache_s": cached, "place_s": placed},
        }

    # (b) the data pipeline -----------------------------------------------------------

    def section_pipeline(self) -> dict[str, Any]:
        from phonemlp.augment import augment

        cfg = self.cfg
        contexts = list(cfg.pipeline.contexts)
        placed = WindowedSplit(self.load(), max(contexts), self.device, self.batch_dtype)
        out: dict[str, Any] = {
            "batch_size": cfg.batch_size,
            "dtype": str(self.batch_dtype).replace("torch.", ""),
            "resident_bytes": placed.padded.numel() * placed.padded.element_size(),
        }
        for context in contexts:
            windows = placed.with_context(context)
            order = torch.randperm(windows.frames, device=self.device)
            count = min(cfg.pipeline.batches, windows.num_batches(cfg.batch_size))

            def gather(
                mask: bool,
                windows: WindowedSplit = windows,
                order: torch.Tensor = order,
                count: int = count,
            ) -> float:
                started = time.perf_counter()
                frames = 0
                for batch, labels in windows.batches(cfg.batch_size, order, count):
                    if mask:
                        batch = augment(batch, windows.feature_dim, cfg.pipeline.mask)
                    frames += len(labels)
                synchronize(self.device)
                return frames / (time.perf_counter() - started)

            gather(False)  # first touch of the pages
            plain = [gather(False) for _ in range(cfg.repeats)]
            masked = [gather(True) for _ in range(cfg.repeats)]
            out[str(context)] = {
                "frames_per_s": median(plain),
                "masked_frames_per_s": median(masked),
                "rounds": {"frames_per_s": plain, "masked_frames_per_s": masked},
            }
        return out

    # (c) training and (d) prediction --------------------------------------------------

    def run_config(self, widths: list[int]) -> DictConfig:
        """phonemlp-train's own config for a model of these widths (its defaults: GELU +
        BatchNorm, dropout, fused AdamW) at the bench's batch size and precision."""
        from phonemlp.api import compose

        listed = ",".join(str(width) for width in widths)
        settings = [f"model.widths=[{listed}]", f"batch_size={self.cfg.batch_size}"]
        return compose("config", [*settings, "scheduler=constant", f"precision={self.precision}"])

    def model(self, widths: list[int], input_dim: int) -> torch.nn.Module:
        model_cfg = self.run_config(widths).model
        return build_model(model_cfg, input_dim, NUM_CLASSES).to(self.device)

    def train_rate(
        self, model: torch.nn.Module, windows: WindowedSplit, rounds: int, batches: int
    ) -> list[float]:
        """Training frames/s per round, through phonemlp-train's own step (loop.Trainer)."""
        from phonemlp.loop import EpochTotals, Trainer

        cfg = self.run_config(model.widths)
        trainer = Trainer(cfg, model, self.precision, windows.feature_dim, batches)
        totals = EpochTotals(self.device, None)
        stream = endless_batches(windows, self.cfg.batch_size)
        model.train()

        def steps(count: int) -> int:
            frames = 0
            for _ in range(count):
                batch, labels = next(stream)
                loss, logits = trainer.step(batch, labels)
                totals.add(loss, logits, labels)
                frames += len(labels)
            synchronize(self.device)
            return frames

        steps(self.cfg.train.warmup)
        rates = []
        for _ in range(rounds):
            started = time.perf_counter()
            frames = steps(batches)
            rates.append(frames / (time.perf_counter() - started))
        return rates

    @torch.inference_mode()
    def predict_rate(self, model: torch.nn.Module, windows: WindowedSplit) -> list[float]:
        """Inference frames/s per round: phonemlp-predict's path (evaluate.logits_batches)."""
        model.eval()
        count = min(self.cfg.predict.batches, windows.num_batches(self.cfg.eval_batch_size))

        def one_pass() -> float:
            started, frames = time.perf_counter(), 0
            for batch, _ in windows.batches(self.cfg.eval_batch_size, limit=count):
                with autocast(self.device, self.precision):
                    logits = model(batch)
                logits.float().softmax(1).cpu()
                frames += len(batch)
            synchronize(self.device)
            return frames / (time.perf_counter() - started)

        one_pass()
        return [one_pass() for _ in range(self.cfg.repeats)]

    def section_train(self, predict: bool = False) -> dict[str, Any]:
        cfg = self.cfg
        windows = WindowedSplit(self.load(), cfg.train.context, self.device, self.batch_dtype)
        out: dict[str, Any] = {"context": cfg.train.context, "precision": self.precision}
        for name, widths in cfg.train.models.items():
            model = self.model(list(widths), windows.input_dim)
            params = sum(p.numel() for p in model.parameters())
            if predict:
                rates, flops_per_frame = self.predict_rate(model, windows), 2 * params
                peaks = [self.peak(self.model_dtype)]
            else:
                rates, peaks, flops_per_frame = [], [], 6 * params
                for _ in range(cfg.repeats):  # a peak measured next to each round
                    peaks.append(self.peak(self.model_dtype))
                    rates += self.train_rate(model, windows, 1, cfg.train.batches)
            if predict:
                utilisation = flops_per_frame * median(rates) / median(peaks)
            else:  # per round, against the peak measured just before it
                utilisation = median(
                    [flops_per_frame * r / p for r, p in zip(rates, peaks, strict=True)]
                )
            out[name] = {
                "widths": list(widths),
                "params": params,
                "frames_per_s": median(rates),
                "mfu": utilisation,
                "peak_flops": median(peaks),
                "rounds": {"frames_per_s": rates, "peak_flops": peaks},
            }
            del model
        return out

    def section_predict(self) -> dict[str, Any]:
        return self.section_train(predict=True)

    # (e) memory ----------------------------------------------------------------------

    def train_command(self, run_dir: Path, *args: str) -> list[str]:
        return [
            str(BIN / "phonemlp-train"),
            f"data.root={self.root}",
            f"data.cache_dir={self.cache_dir}",
            f"data.normalize={self.cfg.data.normalize}",
            f"hydra.run.dir={run_dir}",
            "wandb.mode=disabled",
            f"device={self.cfg.device}",
            f"precision={self.cfg.precision}",
            f"threads={self.cfg.threads}",
            f"batch_size={self.cfg.batch_size}",
            f"eval_batch_size={self.cfg.eval_batch_size}",
            *args,
        ]

    def section_memory(self) -> dict[str, Any]:
        data = self.load()
        raw = data.frames * data.feature_dim * 4
        _, runtime = run_checked(
            [str(BIN / "phonemlp-train"), "--help"], self.work / "help.log", self.work
        )
        out: dict[str, Any] = {
            "train_frames": data.frames,
            "raw_feature_bytes": raw,
            "runtime_rss": runtime,
        }
        for dtype in self.cfg.memory.dtypes:
            run_dir = self.work / f"memory-{dtype}"
            command = self.train_command(run_dir, f"data.dtype={dtype}", *self.cfg.memory.args)
            # prepared before, so that the peak is that of a run with a warm cache
            load_split(self.root, TRAIN, self.prepared(dtype=dtype))
            train_s, train_peak = run_checked(command, self.work / f"train-{dtype}.log", self.work)
            predict_command = [
                str(BIN / "phonemlp-predict"),
                f"ckpt={run_dir}",
                f"out={self.work / f'submission-{dtype}.csv'}",
                f"device={self.cfg.device}",
                f"precision={self.cfg.precision}",
                f"threads={self.cfg.threads}",
                f"batch_size={self.cfg.eval_batch_size}",
            ]
            predict_s, predict_peak = run_checked(
                predict_command, self.work / f"predict-{dtype}.log", self.work
            )
            summary = json.loads((run_dir / "summary.json").read_text())
            out[dtype] = {
                "train_peak_rss": train_peak,
                "train_peak_over_raw": train_peak / raw,
                "train_s": train_s,
                "train_frames_per_s": summary.get("train_frames_per_s"),
                "dev_acc": summary.get("best_dev_acc"),
                "predict_peak_rss": predict_peak,
                "predict_s": predict_s,
            }
        return out

    # (f) the starter-notebook loop ---------------------------------------------------

    def starter_rate(self, starter: ModuleType, widths: list[int], context: int) -> list[float]:
        """Training frames/s of the starter notebook's loop (fp32, per-frame Dataset)."""
        from torch.utils.data import DataLoader

        dataset = starter.AudioDataset(self.root, TRAIN, context)
        loader = DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            shuffle=True,
            num_workers=self.cfg.starter.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.cfg.starter.num_workers > 0,
        )
        input_size = (2 * context + 1) * dataset.feature_dim
        model = starter.build_mlp(input_size, widths, NUM_CLASSES, "gelu", True, 0.1)
        model = model.to(self.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        criterion = torch.nn.CrossEntropyLoss()
        model.train()

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            while True:
                yield from loader

        stream = batches()

        def steps(count: int) -> int:
            seen = 0
            for _ in range(count):  # the starter's train_epoch body
                inputs, targets = next(stream)
                inputs = inputs.to(self.device, non_blocking=True)
                targets = targets.to(self.device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                logits = model(inputs)
                loss = criterion(logits, targets)
                loss.backward()
                optimizer.step()
                loss.item()
                int((logits.argmax(dim=1) == targets).sum().item())
                seen += targets.shape[0]
            return seen

        steps(self.cfg.starter.warmup)
        rates = []
        for _ in range(self.cfg.repeats):
            started = time.perf_counter()
            rates.append(steps(self.cfg.starter.batches) / (time.perf_counter() - started))
        return rates

    def section_starter(self) -> dict[str, Any]:
        cfg = self.cfg
        path = starter_script()
        if path is None:
            return {"skipped": NOT_FOUND}
        starter = load_starter(path)
        context = cfg.starter.context
        windows = WindowedSplit(self.load(), context, self.device, self.batch_dtype)
        self.load(DEV)
        out: dict[str, Any] = {"context": context, "in_process": {}, "whole_process": {}}
        for name, widths in cfg.starter.models.items():
            widths = list(widths)
            rates = self.starter_rate(starter, widths, context)
            model = self.model(widths, windows.input_dim)
            ours = self.train_rate(model, windows, cfg.repeats, cfg.starter.batches)
            out["in_process"][name] = {
                "widths": widths,
                "params": sum(p.numel() for p in model.parameters()),
                "starter_frames_per_s": median(rates),
                "phonemlp_frames_per_s": median(ours),
                "speedup": median(ours) / median(rates),
                "rounds": {"starter": rates, "phonemlp": ours},
            }
            if cfg.starter.whole_process:
                out["whole_process"][name] = self.starter_processes(path, name, widths)
        return out

    def starter_processes(self, path: Path, name: str, widths: list[int]) -> dict[str, Any]:
        """One epoch + dev evaluation as a whole process: phonemlp-train, then the starter."""
        cfg = self.cfg
        context = cfg.starter.context
        model_args = [f"model.widths=[{','.join(map(str, widths))}]"] if widths else []
        ours_s, ours_peak = run_checked(
            self.train_command(
                self.work / f"whole-{name}",
                f"data.dtype={cfg.data.dtype}",
                f"context={context}",
                "epochs=1",
                *(model_args or ["model.depth=0"]),
            ),
            self.work / f"whole-{name}.log",
            self.work,
        )
        starter_command = [
            sys.executable,
            str(path),
            str(self.root),
            "--context", str(context),
            "--epochs", "1",
            "--widths", *map(str, widths),
            "--batch-size", str(cfg.batch_size),
            "--num-workers", str(cfg.starter.num_workers),
            "--no-test",
            "--json", str(self.work / f"starter-{name}.json"),
        ]  # fmt: skip
        if cfg.threads > 0:
            starter_command += ["--threads", str(cfg.threads)]
        starter_s, starter_peak = run_checked(
            starter_command, self.work / f"starter-{name}.log", self.work
        )
        summary = json.loads((self.work / f"whole-{name}" / "summary.json").read_text())
        result = json.loads((self.work / f"starter-{name}.json").read_text())
        return {
            "phonemlp_s": ours_s,
            "starter_s": starter_s,
            "speedup": starter_s / ours_s,
            "phonemlp_dev_acc": summary.get("best_dev_acc"),
            "starter_dev_acc": result.get("dev_acc"),
            "phonemlp_peak_rss": ours_peak,
            "starter_peak_rss": starter_peak,
        }

    # accuracy ------------------------------------------------------------------------

    def section_accuracy(self) -> dict[str, Any]:
        cfg = self.cfg
        out: dict[str, Any] = {"args": list(cfg.accuracy.args)}
        for name, settings in cfg.accuracy.settings.items():
            accuracies = []
            for seed in cfg.accuracy.seeds:
                run_dir = self.work / f"accuracy-{name}-{seed}"
                command = self.train_command(run_dir, *cfg.accuracy.args, *settings, f"seed={seed}")
                run_checked(command, self.work / f"accuracy-{name}-{seed}.log", self.work)
                summary = json.loads((run_dir / "summary.json").read_text())
                accuracies.append(summary["best_dev_acc"])
            out[name] = {
                "settings": list(settings),
                "dev_acc": accuracies,
                "mean": float(np.mean(accuracies)),
                "std": float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
            }
        return out

    # ---------------------------------------------------------------------------------

    def run(self, sections: list[str], report: Callable[[str, dict[str, Any]], None]) -> None:
        train, dev = self.load(), self.load(DEV)
        self.results["corpus"] = {
            "root": str(self.root),
            "train_frames": train.frames,
            "train_utterances": len(train.names),
            "dev_frames": dev.frames,
            "feature_dim": train.feature_dim,
            "raw_train_feature_bytes": train.frames * train.feature_dim * 4,
        }
        del train, dev
        for section in sections:
            started = time.perf_counter()
            result = getattr(self, f"section_{section}")()
            result["section_s"] = time.perf_counter() - started
            self.results[section] = result
            report(section, result)
        self.results["matmul_flops"] = {k: v for k, v in self._peaks.items() if v}
