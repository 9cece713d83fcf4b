"""phonemlp-bench: how fast phonemlp is on this machine, and against the starter notebook.

phonemlp-bench                                        # the embedded demo corpus
phonemlp-bench data.root=../shared/corpora/festival-small out=bench.json
phonemlp-bench generate.frames=36091157 generate.root=/tmp/hw1p2-36M sections=[load,memory]

Sections (conf/bench.yaml `sections`), each a set of figures in the JSON file and the table:
- load: a split read from its .npy files, against building and then opening its cache;
- pipeline: batches of windows + labels only (no model), frames/s per context;
- train: training frames/s and model-FLOP utilisation (6 x params x frames/s over this
  run's own matmul FLOP/s in the same dtype) for about 0.5 M, 3 M and 20 M parameters;
- predict: inference frames/s (and utilisation at 2 x params);
- memory: peak resident memory of whole phonemlp-train / phonemlp-predict runs against
  the raw float32 bytes of the training features, per storage dtype;
- starter: the same model trained through the starter-notebook loop (phonemlp/
  starter_baseline.py: per-frame Dataset + DataLoader), in-process and as whole processes
  (one epoch + dev evaluation);
- accuracy (not by default): dev accuracy per precision and storage dtype, over seeds.

Every figure is measured `repeats` times and the median reported; the machine's load
average is recorded, since a busy machine slows everything.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from phonemlp.data.cache import default_cache_dir
from phonemlp.data.corpus import Split, read_split
from phonemlp.data.splits import corpus_root, load_split
from phonemlp.data.windows import WindowedSplit
from phonemlp.errors import PhonemlpError, exit_on_user_error
from phonemlp.model import autocast_dtype, build_model
from phonemlp.phonemes import CLASSES, EOS, NUM_CLASSES, SOS
from phonemlp.runtime import (
    autocast,
    configure,
    cpu_supports_bf16,
    resolve_device,
    resolve_precision,
)

TRAIN, DEV, TEST = "train-clean-100", "dev-clean", "test-clean"
SECTIONS = ("load", "pipeline", "train", "predict", "memory", "starter", "accuracy", "gpu")
REAL_UTTERANCE_FRAMES = 1265  # the real train split: 36,091,157 frames in 28,539 files
BIN = Path(sys.executable).parent


# --- configuration -----------------------------------------------------------------------


def bench_config(overrides: list[str]) -> DictConfig:
    """conf/bench.yaml with `key=value` overrides (a value replaces the key's whole value,
    e.g. train.models={tiny:[64]}); an unknown key is refused."""
    text = resources.files("phonemlp.conf").joinpath("bench.yaml").read_text()
    cfg = OmegaConf.create(text)
    missing = object()
    for override in overrides:
        key, equals, value = override.partition("=")
        if not equals or not key:
            raise PhonemlpError(f"{override!r}: options are key=value, e.g. data.root=/data")
        if OmegaConf.select(cfg, key, default=missing) is missing:
            raise PhonemlpError(f"{key}: no such option (see phonemlp-bench --help)")
        OmegaConf.update(cfg, key, OmegaConf.from_dotlist([f"value={value}"]).value, merge=False)
    unknown = set(cfg.sections) - set(SECTIONS)
    if unknown:
        raise PhonemlpError(f"sections: {sorted(unknown)} unknown; choose from {SECTIONS}")
    if cfg.data.dtype not in ("float32", "float16"):
        raise PhonemlpError(f"data.dtype={cfg.data.dtype!r} is not one of float32, float16")
    if cfg.repeats < 1:
        raise PhonemlpError(f"repeats={cfg.repeats} must be >= 1")
    check_gpu_config(cfg.gpu)
    return cfg


def check_gpu_config(g: DictConfig) -> None:
    """The gpu section's settings, refused with the key to fix."""
    if g.device not in ("cuda", "cpu"):
        raise PhonemlpError(f"gpu.device={g.device!r} is not one of cuda, cpu")
    for key, allowed in (("precisions", GPU_PRECISIONS), ("placements", GPU_PLACEMENTS)):
        values = list(g[key])
        if not values or not set(values) <= set(allowed):
            raise PhonemlpError(f"gpu.{key}={values}: a non-empty list from {list(allowed)}")
    sizes = list(g.batch_sizes)
    if not sizes or not all(isinstance(b, int) and b >= 1 for b in sizes):
        raise PhonemlpError(f"gpu.batch_sizes={sizes}: a non-empty list of positive integers")
    if not list(g.widths) or not all(isinstance(w, int) and w >= 1 for w in g.widths):
        raise PhonemlpError(f"gpu.widths={list(g.widths)}: hidden widths, positive integers")
    for key in ("frames", "small_frames", "test_frames", "batches", "compile_epochs",
                "resume_batches", "resume_every", "oom_batch_size", "timeout_s"):  # fmt: skip
        if not isinstance(g[key], int) or g[key] < 1:
            raise PhonemlpError(f"gpu.{key}={g[key]} must be a positive integer")
    if not isinstance(g.oom_memory_gb, int | float) or g.oom_memory_gb <= 0:
        raise PhonemlpError(f"gpu.oom_memory_gb={g.oom_memory_gb} must be a number > 0")
    if g.compile_epochs < 2:
        raise PhonemlpError("gpu.compile_epochs must be >= 2 (recompiles after epoch 1 count)")
    if g.resume_every >= g.resume_batches:
        raise PhonemlpError("gpu.resume_every must be below gpu.resume_batches (a mid-epoch save)")


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": memory,
        "cpu_bf16": cpu_supports_bf16(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


# --- timing helpers ----------------------------------------------------------------------


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops(
    dtype: torch.dtype,
    device: torch.device,
    seconds: float = 0.4,
    shape: tuple[int, int, int] = (4096, 1024, 1024),
) -> float:
    """FLOP/s of an (m x k) @ (k x n) matmul in `dtype`, `shape` = (m, k, n): this machine's
    reference peak (4096x1024 @ 1024x1024 by default; a GPU needs larger to reach its peak)."""
    m, k, n = shape
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(4):
            a @ b
        count += 4
        synchronize(device)
    return 2 * m * k * n * count / (time.perf_counter() - started)


def endless_batches(
    windows: WindowedSplit, batch_size: int, seed: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches in a fresh random order each pass, forever."""
    generator = torch.Generator(device=windows.device).manual_seed(seed)
    while True:
        order = torch.randperm(windows.frames, generator=generator, device=windows.device)
        yield from windows.batches(batch_size, order)


# Starts the measured command from a small fresh process: a child's peak RSS (ru_maxrss)
# counts the memory of whatever process forked it, so forking from the bench would add the
# bench's own memory to every figure.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(command: list[str], log: Path, cwd: Path) -> tuple[float, int, int]:
    """Run a command to completion: (wall seconds, peak resident bytes, exit status)."""
    peak_file = log.with_name(log.name + ".peak")
    started = time.perf_counter()
    with open(log, "w") as output:
        status = subprocess.call(
            [sys.executable, "-c", _LAUNCHER, str(peak_file), *command],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    seconds = time.perf_counter() - started
    peak = int(peak_file.read_text()) if peak_file.is_file() else 0
    return seconds, peak, status


def run_checked(command: list[str], log: Path, cwd: Path) -> tuple[float, int]:
    seconds, peak, status = run_measured(command, log, cwd)
    if status != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited with {status}:\n{tail}")
    return seconds, peak


# --- the corpus --------------------------------------------------------------------------


def write_large_corpus(
    root: Path, frames: int, utterances: int = 0, seed: int = 0, progress: bool = True
) -> Path:
    """A corpus in the HW1P2 layout whose train split has exactly `frames` frames.

    Train utterances (about 1265 frames each, like the real data, unless `utterances` is
    given) are cut from the stream of a small demo corpus's train utterances at random
    places and perturbed (a channel offset, a gain and noise per utterance), so no two are
    alike; dev and test are demo splits of about 5.3 % of the train frames each, as in the
    real data. Written into a temporary folder renamed into place; an existing complete
    corpus with the same settings is reused.
    """
    from tqdm import tqdm

    from phonemlp.data.demo import write_demo_corpus

    root = Path(root).expanduser()
    settings = {"frames": frames, "utterances": utterances, "seed": seed, "version": 1}
    marker = root / "bench-corpus.json"
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return root
    if root.exists():
        raise PhonemlpError(
            f"generate.root={root}: exists and is not a corpus the bench wrote with these "
            "settings; remove it or choose another folder"
        )
    count = utterances or max(1, round(frames / REAL_UTTERANCE_FRAMES))
    if frames < count:
        raise PhonemlpError(f"generate.frames={frames} must be >= the utterances ({count})")
    held_out = max(20, round(frames * 0.0534 / 330))  # demo utterances average ~330 frames
    temporary = root.parent / f".{root.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write_demo_corpus(
            temporary / "base",
            seed=seed,
            train_utterances=min(2000, max(50, count)),
            dev_utterances=held_out,
            test_utterances=held_out,
        )
        for name in (DEV, TEST, "test_labels.csv"):
            os.rename(temporary / "base" / name, temporary / name)
        base = read_split(temporary / "base", TRAIN, progress=False)
        stream, stream_labels = base.features, base.labels
        rng = np.random.default_rng([seed, 7])
        shares = rng.lognormal(0.0, 0.35, count)
        minimum = min(50, frames // count)
        lengths = minimum + rng.multinomial(frames - minimum * count, shares / shares.sum())
        symbols = np.asarray(CLASSES, dtype="<U5")
        (temporary / TRAIN / "mfcc").mkdir(parents=True)
        (temporary / TRAIN / "transcript").mkdir()
        bar = tqdm(range(count), desc="writing train", unit="utt", disable=not progress)
        for u in bar:
            length = int(lengths[u])
            rows = (int(rng.integers(len(stream))) + np.arange(length)) % len(stream)
            noise = rng.standard_normal((length, stream.shape[1]), dtype=np.float32)
            offset = rng.normal(0.0, 0.5, stream.shape[1]).astype(np.float32)
            features = stream[rows] + offset + np.float32(rng.normal(0.0, 1.0)) + 0.3 * noise
            transcript = np.concatenate([[SOS], symbols[stream_labels[rows]], [EOS]])
            name = f"{1000 + u // 100:04d}-{100000 + u // 10:06d}-{u % 10:04d}.npy"
            np.save(temporary / TRAIN / "mfcc" / name, features, allow_pickle=False)
            np.save(temporary / TRAIN / "transcript" / name, transcript, allow_pickle=False)
        shutil.rmtree(temporary / "base")
        (temporary / "bench-corpus.json").write_text(json.dumps(settings))
        root.parent.mkdir(parents=True, exist_ok=True)
        os.rename(temporary, root)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return root


# --- sections ----------------------------------------------------------------------------


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
        data, _ = load_split(
            self.root,
            split,
            self.cfg.data.normalize,
            labelled=labelled,
            cache_dir=self.cache_dir,
            dtype=self.cfg.data.dtype,
            progress=False,
        )
        return data

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
            data, _ = load_split(
                self.root, TRAIN, cfg.data.normalize, cache=False, dtype=cfg.data.dtype,
                progress=False,
            )  # fmt: skip
            npy.append(time.perf_counter() - started)
            del data
        fresh = self.work / "fresh-cache"
        started = time.perf_counter()
        load_split(
            self.root, TRAIN, cfg.data.normalize, cache_dir=fresh, dtype=cfg.data.dtype,
            progress=False,
        )  # fmt: skip
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

    def model(self, widths: list[int], input_dim: int) -> torch.nn.Module:
        text = resources.files("phonemlp.conf").joinpath("model/cylinder.yaml").read_text()
        model_cfg = OmegaConf.create(text)
        model_cfg.widths = list(widths)
        return build_model(model_cfg, input_dim, NUM_CLASSES).to(self.device)

    def optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The default optimizer (conf/optimizer/adamw.yaml), fused as phonemlp-train makes it."""
        text = resources.files("phonemlp.conf").joinpath("optimizer/adamw.yaml").read_text()
        options = OmegaConf.to_container(OmegaConf.create(text))
        options = {k: v for k, v in options.items() if not k.startswith("_")}
        return torch.optim.AdamW(model.parameters(), fused=True, **options)

    def train_rate(
        self, model: torch.nn.Module, windows: WindowedSplit, rounds: int, batches: int
    ) -> list[float]:
        """Training frames/s per round: the step phonemlp-train takes (train.train_epoch)."""
        optimizer = self.optimizer(model)
        stream = endless_batches(windows, self.cfg.batch_size)
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        model.train()

        def steps(count: int) -> int:
            nonlocal loss_sum, correct
            frames = 0
            for _ in range(count):
                batch, labels = next(stream)
                with autocast(self.device, self.precision):
                    logits = model(batch)
                    loss = F.cross_entropy(logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(labels)
                correct += (logits.argmax(1) == labels).sum()
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
            load_split(  # prepared before, so that the peak is that of a run with a warm cache
                self.root, TRAIN, self.cfg.data.normalize, cache_dir=self.cache_dir,
                dtype=dtype, progress=False,
            )  # fmt: skip
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

    def starter_rate(self, widths: list[int], context: int) -> list[float]:
        """Training frames/s of the starter notebook's loop (fp32, per-frame Dataset)."""
        from torch.utils.data import DataLoader

        from phonemlp.starter_baseline import AudioDataset, build_mlp

        dataset = AudioDataset(self.root, TRAIN, context)
        loader = DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            shuffle=True,
            num_workers=self.cfg.starter.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.cfg.starter.num_workers > 0,
        )
        input_size = (2 * context + 1) * dataset.feature_dim
        model = build_mlp(input_size, widths, NUM_CLASSES, "gelu", True, 0.1).to(self.device)
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
        context = cfg.starter.context
        windows = WindowedSplit(self.load(), context, self.device, self.batch_dtype)
        self.load(DEV)
        out: dict[str, Any] = {"context": context, "in_process": {}, "whole_process": {}}
        for name, widths in cfg.starter.models.items():
            widths = list(widths)
            starter = self.starter_rate(widths, context)
            model = self.model(widths, windows.input_dim)
            ours = self.train_rate(model, windows, cfg.repeats, cfg.starter.batches)
            out["in_process"][name] = {
                "widths": widths,
                "params": sum(p.numel() for p in model.parameters()),
                "starter_frames_per_s": median(starter),
                "phonemlp_frames_per_s": median(ours),
                "speedup": median(ours) / median(starter),
                "rounds": {"starter": starter, "phonemlp": ours},
            }
            if not cfg.starter.whole_process:
                continue
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
                "-m",
                "phonemlp.starter_baseline",
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
            out["whole_process"][name] = {
                "phonemlp_s": ours_s,
                "starter_s": starter_s,
                "speedup": starter_s / ours_s,
                "phonemlp_dev_acc": summary.get("best_dev_acc"),
                "starter_dev_acc": result.get("dev_acc"),
                "phonemlp_peak_rss": ours_peak,
                "starter_peak_rss": starter_peak,
            }
        return out

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


# --- the report --------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with its measured value and whether it is met."""
    checks: dict[str, Any] = {}

    def check(name: str, value: float | None, target: float, higher: bool = True) -> None:
        if value is None:
            return
        checks[name] = {
            "value": value,
            "target": target,
            "met": bool(value >= target if higher else value <= target),
        }

    whole = results.get("starter", {}).get("whole_process", {})
    check("whole-process speed-up, linear ctx20", whole.get("linear", {}).get("speedup"), 10.0)
    check("whole-process speed-up, 3x1024 ctx20", whole.get("mlp_3x1024", {}).get("speedup"), 4.0)
    train = results.get("train", {})
    for name in ("medium", "large"):
        if name in train:
            check(f"training MFU, {name} ({train[name]['params'] / 1e6:.1f} M)",
                  train[name]["mfu"], 0.5)  # fmt: skip
    pipeline = results.get("pipeline", {})
    if "30" in pipeline:
        check("pipeline frames/s, ctx30", pipeline["30"]["frames_per_s"], 2e6)
    if "load" in results:
        check("cache load speed-up over .npy", results["load"]["speedup"], 20.0)
    memory = results.get("memory", {})
    for dtype, limit in (("float32", 1.5), ("float16", 0.9)):
        if dtype in memory:
            check(f"peak RSS / raw bytes, {dtype}", memory[dtype]["train_peak_over_raw"],
                  limit, higher=False)  # fmt: skip
    return checks


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.2f} "


def describe(section: str, result: dict[str, Any]) -> list[str]:
    """Table rows (figure, value) for one section."""
    rows = []
    if section == "load":
        rows += [
            ("load train from .npy", f"{result['npy_s']:.2f} s"),
            ("build the cache (first run)", f"{result['cache_build_s']:.2f} s"),
            ("load train from the cache", f"{result['cache_s'] * 1e3:.1f} ms"),
            ("  speed-up", f"{result['speedup']:.0f}x"),
            ("place on the device (ctx30)", f"{result['place_s']:.2f} s"),
        ]
    elif section == "pipeline":
        for key, value in result.items():
            if isinstance(value, dict) and "frames_per_s" in value:
                rows.append((f"pipeline ctx{key}", f"{_si(value['frames_per_s'])}frames/s"))
                rows.append(("  + masking", f"{_si(value['masked_frames_per_s'])}frames/s"))
    elif section in ("train", "predict"):
        for name, value in result.items():
            if isinstance(value, dict) and "params" in value:
                rows.append(
                    (
                        f"{section} {name} ({value['params'] / 1e6:.2f} M, ctx{result['context']})",
                        f"{_si(value['frames_per_s'])}frames/s, MFU {value['mfu']:.0%}",
                    )
                )
    elif section == "memory":
        raw = result["raw_feature_bytes"]
        rows.append(("raw train features (float32)", f"{raw / 2**30:.2f} GiB"))
        rows.append(
            ("runtime alone (phonemlp-train --help)", f"{result['runtime_rss'] / 2**30:.2f} GiB")
        )
        for dtype in ("float32", "float16"):
            if dtype in result:
                value = result[dtype]
                rows.append(
                    (
                        f"peak RSS train, {dtype} storage",
                        f"{value['train_peak_rss'] / 2**30:.2f} GiB "
                        f"({value['train_peak_over_raw']:.2f}x raw)",
                    )
                )
                rows.append(
                    (f"peak RSS predict, {dtype}", f"{value['predict_peak_rss'] / 2**30:.2f} GiB")
                )
    elif section == "starter":
        for name, value in result["in_process"].items():
            rows.append(
                (
                    f"train step {name} ctx{result['context']}: starter / phonemlp",
                    f"{_si(value['starter_frames_per_s'])}/ {_si(value['phonemlp_frames_per_s'])}"
                    f"frames/s = {value['speedup']:.1f}x",
                )
            )
        for name, value in result["whole_process"].items():
            rows.append(
                (
                    f"epoch + dev, whole process, {name}",
                    f"starter {value['starter_s']:.1f} s / phonemlp {value['phonemlp_s']:.1f} s"
                    f" = {value['speedup']:.1f}x",
                )
            )
    elif section == "accuracy":
        for name, value in result.items():
            if isinstance(value, dict) and "mean" in value:
                rows.append((f"dev acc {name}", f"{value['mean']:.4f} ± {value['std']:.4f}"))
    return rows


def print_rows(rows: list[tuple[str, str]]) -> None:
    for figure, value in rows:
        print(f"  {figure:<48} {value}", flush=True)


# --- the GPU self-check (sections=[gpu]) -------------------------------------------------

GPU_PRECISIONS = ("bf16", "fp16", "fp32")
GPU_PLACEMENTS = ("device", "host", "auto")
MATMUL_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# Runs a console script (a Python file) with the process's GPU memory capped, so that an absurd
# batch runs out of memory on any GPU, raised by the caching allocator as a real shortage is.
# usage: python -c CAPPED <fraction of the GPU's memory> <script> [args...] (no GPU: no cap)
CAPPED = """
import runpy, sys
import torch
if torch.cuda.is_available():
    torch.cuda.set_per_process_memory_fraction(float(sys.argv[1]))
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def script(name: str) -> str:
    """An installed console script: beside this Python, else on PATH."""
    beside = BIN / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise PhonemlpError(
            f"{name}: not found beside {sys.executable} nor on PATH; install phonemlp "
            "(pip install -e .)"
        )
    return found


def one_line_error(stderr: str, status: int, program: str) -> str | None:
    """The error line of a failed command whose stderr ends in exactly one
    `<program>: error: ...` line and holds no traceback; None otherwise."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"{program}: error: ")]
    if status == 0 or "Traceback" in stderr or len(errors) != 1 or lines[-1] != errors[0]:
        return None
    return errors[0]


def count_recompiles(output: str) -> tuple[int, int, bool]:
    """From the output of a compile=true run with TORCH_LOGS=recompiles: (recompiles in all,
    recompiles after the line that ends epoch 1, whether dynamo hit its recompile limit)."""
    total = after = 0
    first_epoch_done = False
    for line in output.splitlines():
        if "Recompiling function" in line:
            total += 1
            after += first_epoch_done
        elif re.search(r"\bepoch 1/\d+\s+lr ", line):  # the line that ends epoch 1
            first_epoch_done = True
    return total, after, "torch._dynamo hit config." in output


def metrics_rows(run_dir: Path) -> list[dict[str, float]]:
    """A run's metrics.csv, one dict of numbers per epoch."""
    with open(run_dir / "metrics.csv", newline="") as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


class GpuCheck:
    """Training on a GPU end to end, through phonemlp's own API and console scripts, on a
    synthetic split of the real size (phonemlp.data.synthetic): timed runs per batch size,
    placement and precision, torch.compile with a per-epoch dropout (recompiles counted), a
    run killed with SIGKILL and resumed, prediction of a test split, and out-of-memory errors
    that must be one line. Every check is a row: pass, fail or skip (with the reason)."""

    def __init__(self, cfg: DictConfig, work: Path) -> None:
        self.cfg = cfg
        self.g = cfg.gpu
        self.device = torch.device(self.g.device)
        self.cuda = self.device.type == "cuda"
        self.work = work
        self.main = str(self.g.precisions[0])
        self.checks: list[dict[str, Any]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.peaks: dict[str, float] = {}
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.resumed: Path | None = None  # a finished run to predict with
        self.test_root: Path | None = None

    # helpers -------------------------------------------------------------------------

    def record(self, name: str, status: str, figure: str, **detail: Any) -> None:
        self.checks.append({"check": name, "status": status, "figure": figure, **detail})
        print(f"  {status.upper() if status == 'fail' else status:<5} {name:<40} {figure}",
              flush=True)  # fmt: skip
        if status == "fail" and detail.get("log_tail"):
            print("    " + detail["log_tail"].replace("\n", "\n    "), flush=True)

    def overrides(
        self, frames: int, batch_size: int, precision: str, placement: str, *extra: str
    ) -> list[str]:
        g = self.g
        return [
            "wandb.mode=disabled",
            f"device={g.device}",
            f"data.synthetic_frames={frames}",
            "data.normalize=none",  # a synthetic split is generated normalised
            f"data.placement={placement}",
            f"context={g.context}",
            f"model.widths=[{','.join(str(int(w)) for w in g.widths)}]",
            f"batch_size={batch_size}",
            f"precision={precision}",
            f"seed={g.seed}",
            *extra,
            *g.args,
        ]

    def command(
        self, command: list[str], name: str, merged: bool = True, env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """Run a command in the work folder: (exit status, stdout (+ stderr), stderr)."""
        log, err = self.work / f"{name}.log", self.work / f"{name}.err"
        with open(log, "w") as out, open(err, "w") as errors:
            try:
                status = subprocess.call(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT if merged else errors,
                    cwd=self.work,
                    env={**self.env, **(env or {})},
                    timeout=self.g.timeout_s,
                )
            except subprocess.TimeoutExpired:
                status = 124
                errors.write(f"timed out after gpu.timeout_s={self.g.timeout_s} s\n")
        return status, log.read_text(errors="replace"), err.read_text(errors="replace")

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def drop_checkpoints(self, run_dir: Path) -> None:
        if not self.g.keep:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)

    # the checks ----------------------------------------------------------------------

    def measure_peaks(self) -> None:
        shape = (8192, 8192, 8192) if self.cuda else (4096, 1024, 1024)
        for precision in GPU_PRECISIONS:
            if precision == "fp16" and not self.cuda:
                continue
            self.peaks[precision] = matmul_flops(MATMUL_DTYPES[precision], self.device, 0.4, shape)
        self.free()
        fp32 = "fp32 (TF32)" if self.cuda and torch.backends.cuda.matmul.allow_tf32 else "fp32"
        shown = ", ".join(
            f"{fp32 if p == 'fp32' else p} {_si(v)}FLOP/s" for p, v in self.peaks.items()
        )
        print(f"  matmul {'x'.join(map(str, shape))}: {shown}", flush=True)

    def generate(self) -> None:
        from phonemlp.data.splits import SYNTHETIC_DIM
        from phonemlp.data.synthetic import synthetic_split

        frames = int(self.g.frames)
        started = time.perf_counter()
        split = synthetic_split(frames, SYNTHETIC_DIM, self.g.seed)
        seconds = time.perf_counter() - started
        size = split.features.nbytes
        ok = split.frames == frames and split.labels is not None
        self.record(
            f"synthetic train split, {frames:,} frames",
            "pass" if ok else "fail",
            f"{seconds:.1f} s ({size / 2**30:.1f} GiB, {len(split.names):,} utterances)",
            seconds=seconds,
            bytes=size,
            utterances=len(split.names),
        )
        del split
        self.free()

    def timed(self, batch_size: int, precision: str, placement: str) -> None:
        """Two epochs of g.batches batches through phonemlp.train (in this process); the
        second epoch is timed, the first has the warm-up."""
        name = f"{precision}-{placement}-b{batch_size}"
        if precision == "fp16" and not self.cuda:
            self.record(f"train {name}", "skip", "precision=fp16 needs a CUDA GPU")
            return
        import phonemlp

        run_dir = self.work / name
        overrides = self.overrides(
            self.g.frames, batch_size, precision, placement, "epochs=2",
            f"limit_batches={self.g.batches}",
        )  # fmt: skip
        log = self.work / f"{name}.log"
        started = time.perf_counter()
        try:
            with (
                open(log, "w") as out,
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(out),
            ):
                try:
                    phonemlp.train(overrides, run_dir)
                except BaseException:
                    traceback.print_exc(file=out)
                    raise
        except Exception as error:
            first = (str(error).splitlines() or [""])[0]
            self.record(
                f"train {name}", "fail", f"{type(error).__name__}: {first}",
                log_tail=_tail(log.read_text(errors="replace")),
            )  # fmt: skip
            return
        finally:
            self.free()
        self.timing_row(name, run_dir, batch_size, precision, placement, False,
                        time.perf_counter() - started, 2)  # fmt: skip

    def timing_row(
        self,
        name: str,
        run_dir: Path,
        batch_size: int,
        precision: str,
        placement: str,
        compiled: bool,
        wall_s: float,
        epochs: int,
    ) -> None:
        rows = metrics_rows(run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        self.drop_checkpoints(run_dir)
        params = int(summary["params"])
        steady = [r["train_frames_per_s"] for r in rows if r["epoch"] >= 2]
        rate = median(steady) if steady else float("nan")
        epoch_s = self.g.frames / rate
        peak = self.peaks.get(precision, float("nan"))
        mfu = 6 * params * rate / peak
        losses = [r["train_loss"] for r in rows]
        falls = len(rows) == epochs and all(map(math.isfinite, losses)) and losses[-1] < losses[0]
        self.runs[name] = {
            "batch_size": batch_size,
            "precision": precision,
            "placement": placement,
            "compile": compiled,
            "params": params,
            "batches_per_epoch": int(self.g.batches),
            "frames_per_s": rate,
            "epoch_s": epoch_s,
            "mfu": mfu,
            "peak_flops": peak,
            "train_loss": losses,
            "dev_acc": [r["dev_acc"] for r in rows],
            "wall_s": wall_s,
        }
        self.record(
            f"train {name}",
            "pass" if falls else "fail",
            f"epoch {epoch_s:.1f} s = {_si(rate)}frames/s, MFU {mfu:.0%}; loss "
            f"{losses[0]:.2f} -> {losses[-1]:.2f}, dev acc {rows[-1]['dev_acc']:.3f}",
            run=name,
        )

    def compiled(self, batch_size: int) -> None:
        """compile=true with dropout_final (the dropout rate changes every epoch), in its own
        process with TORCH_LOGS=recompiles: timed, and no recompile after the first epoch."""
        g = self.g
        name = f"{self.main}-{g.placements[0]}-b{batch_size}-compile"
        run_dir = self.work / name
        command = [
            script("phonemlp-train"),
            *self.overrides(
                g.frames, batch_size, self.main, g.placements[0], "compile=true",
                f"epochs={g.compile_epochs}", f"limit_batches={g.batches}",
                f"dropout_final={g.dropout_final}", f"hydra.run.dir={run_dir}",
            ),
        ]  # fmt: skip
        started = time.perf_counter()
        status, output, _ = self.command(command, name, env={"TORCH_LOGS": "recompiles"})
        if status != 0:
            self.record(f"train {name}", "fail", f"exit status {status}", log_tail=_tail(output))
            return
        self.timing_row(name, run_dir, batch_size, self.main, str(g.placements[0]), True,
                        time.perf_counter() - started, int(g.compile_epochs))  # fmt: skip
        total, after, limit = count_recompiles(output)
        self.runs[name].update(recompiles=total, recompiles_after_epoch_1=after)
        self.record(
            f"recompiles {name}",
            "pass" if after == 0 and not limit else "fail",
            f"{after} after epoch 1 of {g.compile_epochs} ({total} in all)"
            + ("; dynamo hit its recompile limit" if limit else ""),
            log_tail=None if after == 0 and not limit else _tail(output, 40),
        )

    def resume(self) -> None:
        """A phonemlp-train process killed with SIGKILL once it saved checkpoints/last.pt
        mid-epoch, then `phonemlp-train resume=<run>` must finish it."""
        g = self.g
        killed, resumed = self.work / "killed", self.work / "resumed"
        command = [
            script("phonemlp-train"),
            *self.overrides(
                g.small_frames, g.batch_sizes[0], self.main, g.placements[0], "epochs=2",
                f"limit_batches={g.resume_batches}",
                f"checkpoint_every_batches={g.resume_every}", f"hydra.run.dir={killed}",
            ),
        ]  # fmt: skip
        last = killed / "checkpoints" / "last.pt"
        log = self.work / "killed.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=self.work, env=self.env
            )
            deadline = time.monotonic() + g.timeout_s
            while process.poll() is None and not last.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            ended = process.poll()
            process.kill()  # SIGKILL: no handler runs, nothing is flushed or saved
            process.wait()
        name = "resume after SIGKILL"
        if ended is not None or not last.exists():
            why = (
                f"the run ended (status {ended}) before it was killed; raise gpu.resume_batches"
                if ended is not None
                else f"no checkpoints/last.pt within gpu.timeout_s={g.timeout_s} s"
            )
            self.record(name, "fail", why, log_tail=_tail(log.read_text(errors="replace")))
            return
        status, output, _ = self.command(
            [script("phonemlp-train"), f"resume={killed}", "wandb.mode=disabled",
             f"hydra.run.dir={resumed}"],
            "resumed",
        )  # fmt: skip
        where = re.search(r"resumed from \S+ at epoch (\d+) batch (\d+)", output)
        rows = metrics_rows(resumed) if (resumed / "metrics.csv").is_file() else []
        if status != 0 or where is None or len(rows) != 2:
            self.record(
                name, "fail",
                f"exit status {status}, {len(rows)} epochs, "
                + ("resumed mid-epoch" if where else "no 'resumed from ... batch' line"),
                log_tail=_tail(output),
            )  # fmt: skip
            return
        self.resumed = resumed
        self.record(
            name,
            "pass",
            f"killed in epoch {where[1]} after batch {where[2]} of {g.resume_batches}; "
            f"resumed, 2 epochs, dev acc {rows[-1]['dev_acc']:.3f}",
        )

    def write_test_corpus(self) -> Path:
        """A synthetic test split as files (mfcc/*.npy) with its answers in test_labels.csv."""
        import pandas as pd

        from phonemlp.data.splits import SYNTHETIC_DIM
        from phonemlp.data.synthetic import synthetic_split, write_split_files

        root = self.work / "test-corpus"
        split = synthetic_split(int(self.g.test_frames), SYNTHETIC_DIM, self.g.seed + 2)
        write_split_files(split, root / "test-clean", transcripts=False)
        answers = pd.DataFrame(
            {"Id": np.arange(split.frames), "Label": np.asarray(CLASSES)[split.labels]}
        )
        answers.to_csv(root / "test_labels.csv", index=False)
        return root

    def predict(self) -> None:
        """phonemlp.predict on the test split with the resumed run's best checkpoint."""
        import phonemlp

        name = f"predict test split, {int(self.g.test_frames):,} frames"
        if self.resumed is None:
            self.record(name, "skip", "no finished run to predict with (the resume check failed)")
            return
        self.test_root = self.write_test_corpus()
        out = self.work / "submission.csv"
        log = self.work / "predict.log"
        started = time.perf_counter()
        try:
            with (
                open(log, "w") as stream,
                contextlib.redirect_stdout(stream),
                contextlib.redirect_stderr(stream),
            ):
                result = phonemlp.predict(
                    str(self.resumed), out=str(out),
                    overrides=[f"data.root={self.test_root}", f"device={self.g.device}"],
                )  # fmt: skip
        except Exception as error:
            first = (str(error).splitlines() or [""])[0]
            self.record(name, "fail", f"{type(error).__name__}: {first}",
                        log_tail=_tail(log.read_text(errors="replace")))  # fmt: skip
            return
        finally:
            self.free()
        seconds = time.perf_counter() - started
        with open(out) as file:
            rows = sum(1 for _ in file) - 1
        accuracy = result.get("accuracy")
        ok = rows == int(self.g.test_frames) and accuracy is not None
        self.record(
            name,
            "pass" if ok else "fail",
            f"{rows:,} rows in {seconds:.1f} s, test accuracy "
            + ("none" if accuracy is None else f"{accuracy:.3f}"),
            seconds=seconds,
            accuracy=accuracy,
        )

    def out_of_memory(self) -> None:
        """An absurd batch in training and in prediction: one line, no traceback."""
        g = self.g
        names = ("out of memory: phonemlp-train", "out of memory: phonemlp-predict")
        if not self.cuda:
            for name in names:
                self.record(name, "skip", "needs a CUDA GPU (on a CPU the machine would swap)")
            return
        total = torch.cuda.get_device_properties(self.device).total_memory
        fraction = min(1.0, float(g.oom_memory_gb) * 2**30 / total)
        capped = [sys.executable, "-c", CAPPED, f"{fraction:.6f}"]
        train = [
            script("phonemlp-train"),
            *self.overrides(
                g.small_frames, g.oom_batch_size, self.main, "device", "epochs=1",
                f"hydra.run.dir={self.work / 'oom-train'}",
            ),
        ]  # fmt: skip
        commands = [("phonemlp-train", train)]
        if self.resumed is not None and self.test_root is not None:
            predict = [
                script("phonemlp-predict"), f"ckpt={self.resumed}",
                f"out={self.work / 'oom.csv'}", f"data.root={self.test_root}",
                f"device={g.device}", f"batch_size={g.oom_batch_size}",
            ]  # fmt: skip
            commands.append(("phonemlp-predict", predict))
        else:
            self.record(names[1], "skip", "no finished run to predict with")
        for program, command in commands:
            status, output, errors = self.command(
                [*capped, *command], f"oom-{program}", merged=False
            )
            line = one_line_error(errors, status, program)
            ok = line is not None and "memory" in line.lower()
            self.record(
                f"out of memory: {program}",
                "pass" if ok else "fail",
                line if ok else f"exit status {status}, not one line about memory",
                batch_size=int(g.oom_batch_size),
                memory_cap_gib=float(g.oom_memory_gb),
                log_tail=None if ok else _tail(output + errors),
            )

    def target(self) -> None:
        g = self.g
        name = f"target: real-size epoch <= {g.target_epoch_s:g} s"
        if not self.cuda or g.target_epoch_s <= 0:
            why = "set for a CUDA GPU" if not self.cuda else "gpu.target_epoch_s=0"
            self.record(name, "skip", why)
            return
        timed = [
            (run["epoch_s"], key)
            for key, run in self.runs.items()
            if run["precision"] == self.main and run["placement"] != "host"
        ]
        if not timed:
            self.record(name, "fail", "no timed run finished")
            return
        best, key = min(timed)
        self.record(
            name,
            "pass" if best <= g.target_epoch_s else "fail",
            f"{best:.1f} s with {key} ({self.runs[key]['params'] / 1e6:.2f} M parameters, "
            f"{int(g.frames):,} frames)",
            epoch_s=best,
            run=key,
        )

    def run(self) -> dict[str, Any]:
        g = self.g
        started = time.perf_counter()
        configure(self.device, self.cfg.threads)
        if self.cuda:
            properties = torch.cuda.get_device_properties(self.device)
            where = (
                f"{properties.name} ({properties.total_memory / 2**30:.0f} GiB), "
                f"CUDA {torch.version.cuda}"
            )
        else:
            where = f"CPU ({machine()['cpu']})"
        print(f"gpu self-check on {where}, torch {torch.__version__}", flush=True)
        self.measure_peaks()
        self.generate()
        for batch_size in g.batch_sizes:
            self.timed(int(batch_size), self.main, str(g.placements[0]))
        for placement in g.placements[1:]:
            self.timed(int(g.batch_sizes[-1]), self.main, str(placement))
        for precision in g.precisions[1:]:
            self.timed(int(g.batch_sizes[-1]), str(precision), str(g.placements[0]))
        if g.compile:
            for batch_size in g.batch_sizes:
                self.compiled(int(batch_size))
        self.resume()
        self.predict()
        self.out_of_memory()
        self.target()
        counts = {s: sum(c["status"] == s for c in self.checks) for s in ("pass", "fail", "skip")}
        self.table()
        return {
            "device": where,
            "peak_flops": self.peaks,
            "checks": self.checks,
            "runs": self.runs,
            "passed": counts["pass"],
            "failed": counts["fail"],
            "skipped": counts["skip"],
            "seconds": time.perf_counter() - started,
        }

    def table(self) -> None:
        """The timed runs side by side, then every check's verdict."""
        if self.runs:
            print(f"\n  {'run':<30} {'epoch (projected)':>17} {'frames/s':>11} {'MFU':>5} "
                  f"{'dev acc':>8}")  # fmt: skip
            for key, run in self.runs.items():
                print(f"  {key:<30} {run['epoch_s']:>15.1f} s {_si(run['frames_per_s']):>11} "
                      f"{run['mfu']:>5.0%} {run['dev_acc'][-1]:>8.3f}")  # fmt: skip
        failed = [c["check"] for c in self.checks if c["status"] == "fail"]
        counts = {s: sum(c["status"] == s for c in self.checks) for s in ("pass", "fail", "skip")}
        print(
            f"\ngpu self-check: {counts['pass']} pass, {counts['fail']} fail, "
            f"{counts['skip']} skipped" + (f" (failed: {'; '.join(failed)})" if failed else ""),
            flush=True,
        )


def gpu_check(cfg: DictConfig) -> dict[str, Any]:
    """sections=[gpu]: the GPU self-check; without a GPU (and gpu.device=cuda), one line."""
    if cfg.gpu.device == "cuda" and not torch.cuda.is_available():
        reason = "no CUDA GPU here (torch.cuda.is_available() is False)"
        print(f"gpu: {reason}; the GPU self-check is skipped (gpu.device=cpu runs it at toy "
              "size)", flush=True)  # fmt: skip
        return {"no_gpu": reason}
    work = Path(tempfile.mkdtemp(prefix="phonemlp-gpu-check-"))
    saved = os.environ.get("PHONEMLP_CACHE")
    os.environ["PHONEMLP_CACHE"] = str(work / "cache")  # prepared test split: not in the user's
    try:
        return GpuCheck(cfg, work).run()
    finally:
        if saved is None:
            os.environ.pop("PHONEMLP_CACHE", None)
        else:
            os.environ["PHONEMLP_CACHE"] = saved
        if cfg.gpu.keep:
            print(f"gpu: run folders and logs kept in {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


# --- the command -------------------------------------------------------------------------


def bench(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured sections; write and return every figure (and the gpu checks)."""
    sections = [s for s in cfg.sections if s != "gpu"]
    results: dict[str, Any] = {"machine": machine(), "config": OmegaConf.to_container(cfg)}
    if sections:
        measure_sections(cfg, sections, results)
    if "gpu" in cfg.sections:
        results["gpu"] = gpu_check(cfg)
        if not sections and "no_gpu" in results["gpu"]:
            return results  # no GPU: nothing measured, nothing written
    results["machine"]["load_average_end"] = list(os.getloadavg())
    out = Path(cfg.out).expanduser()
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return results


def measure_sections(cfg: DictConfig, sections: list[str], results: dict[str, Any]) -> None:
    device = resolve_device(cfg.device)
    configure(device, cfg.threads)
    if cfg.generate.frames > 0:
        target = cfg.generate.root or default_cache_dir().parent / (
            f"bench-corpus-{cfg.generate.frames}"
        )
        started = time.perf_counter()
        root = write_large_corpus(
            Path(target), cfg.generate.frames, cfg.generate.utterances, cfg.generate.seed
        )
        print(f"corpus: {root} ({time.perf_counter() - started:.0f} s)", flush=True)
    else:
        root = corpus_root(cfg.data.root)
    owned = cfg.data.cache_dir is None
    cache_dir = (
        Path(tempfile.mkdtemp(prefix="bench-", dir=_ensure(default_cache_dir())))
        if owned
        else Path(cfg.data.cache_dir).expanduser()
    )
    work = Path(tempfile.mkdtemp(prefix="phonemlp-bench-"))
    try:
        runner = Bench(cfg, root, cache_dir, work)
        runner.results = results
        print(
            f"phonemlp-bench on {root}: {results['machine']['cpu']}, "
            f"{torch.get_num_threads()} threads, precision {runner.precision}",
            flush=True,
        )

        def report(section: str, result: dict[str, Any]) -> None:
            print(f"{section} ({result['section_s']:.0f} s)", flush=True)
            print_rows(describe(section, result))

        runner.run(sections, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if owned:
            shutil.rmtree(cache_dir, ignore_errors=True)
    results["targets"] = targets(results)
    print("targets")
    for name, check in results["targets"].items():
        value = check["value"]
        shown = f"{value:.3g}" if value < 1e5 else _si(value)
        print(f"  {name:<48} {shown} (target {check['target']:g}): "
              f"{'met' if check['met'] else 'NOT met'}")  # fmt: skip


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main(argv: list[str] | None = None) -> None:
    """phonemlp-bench [key=value ...] (see conf/bench.yaml)."""
    args = sys.argv[1:] if argv is None else argv
    with exit_on_user_error("phonemlp-bench"):
        if args and args[0] in ("-h", "--help"):
            print(__doc__)
            print(resources.files("phonemlp.conf").joinpath("bench.yaml").read_text())
            return
        results = bench(bench_config(args))
    if results.get("gpu", {}).get("failed"):
        sys.exit(1)


if __name__ == "__main__":
    main()
