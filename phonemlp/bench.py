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
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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
SECTIONS = ("load", "pipeline", "train", "predict", "memory", "starter", "accuracy")
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
    return cfg


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


def matmul_flops(dtype: torch.dtype, device: torch.device, seconds: float = 0.4) -> float:
    """FLOP/s of a 4096x1024 @ 1024x1024 matmul in `dtype`: this machine's reference peak."""
    a = torch.randn(4096, 1024, device=device).to(dtype)
    b = torch.randn(1024, 1024, device=device).to(dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(4):
            a @ b
        count += 4
        synchronize(device)
    return 2 * 4096 * 1024 * 1024 * count / (time.perf_counter() - started)


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


# --- the command -------------------------------------------------------------------------


def bench(cfg: DictConfig) -> dict[str, Any]:
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
    results: dict[str, Any] = {"machine": machine(), "config": OmegaConf.to_container(cfg)}
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

        runner.run(list(cfg.sections), report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if owned:
            shutil.rmtree(cache_dir, ignore_errors=True)
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["targets"] = targets(results)
    print("targets")
    for name, check in results["targets"].items():
        value = check["value"]
        shown = f"{value:.3g}" if value < 1e5 else _si(value)
        print(f"  {name:<48} {shown} (target {check['target']:g}): "
              f"{'met' if check['met'] else 'NOT met'}")  # fmt: skip
    out = Path(cfg.out).expanduser()
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return results


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
        bench(bench_config(args))


if __name__ == "__main__":
    main()
