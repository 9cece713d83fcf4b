"""The GPU self-check (sections=[gpu]): training end to end on a CUDA GPU through phonemlp's
own API and console scripts, each check a row that passes, fails or is skipped."""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from phonemlp.bench.report import si
from phonemlp.bench.timing import machine, matmul_flops, median, script
from phonemlp.errors import PhonemlpError
from phonemlp.phonemes import CLASSES
from phonemlp.runtime import configure

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


@contextlib.contextmanager
def output_to(log: Path) -> Iterator[None]:
    """Send what an in-process run prints (its log lines, progress) to `log`."""
    with (
        open(log, "w") as stream,
        contextlib.redirect_stdout(stream),
        contextlib.redirect_stderr(stream),
    ):
        yield


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
        """The matmul FLOP/s of each precision the runs use: their MFU's reference. On a CPU
        (the toy-size code path) a small matmul: bf16 is emulated, slowly, on AVX2-only CPUs."""
        shape = (8192, 8192, 8192) if self.cuda else (512, 512, 512)
        for precision in dict.fromkeys(map(str, self.g.precisions)):
            if precision == "fp16" and not self.cuda:
                continue
            self.peaks[precision] = matmul_flops(MATMUL_DTYPES[precision], self.device, 0.4, shape)
        self.free()
        fp32 = "fp32 (TF32)" if self.cuda and torch.backends.cuda.matmul.allow_tf32 else "fp32"
        shown = ", ".join(
            f"{fp32 if p == 'fp32' else p} {si(v)}FLOP/s" for p, v in self.peaks.items()
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
            with output_to(log):
                try:
                    phonemlp.train(overrides, run_dir)
                except BaseException:
                    traceback.print_exc()  # into the log (stderr is redirected)
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
        setting = {"batch_size": batch_size, "precision": precision, "placement": placement}
        self.timing_row(name, run_dir, {**setting, "compile": False},
                        time.perf_counter() - started, 2)  # fmt: skip

    def timing_row(
        self, name: str, run_dir: Path, setting: dict[str, Any], wall_s: float, epochs: int
    ) -> None:
        """A finished timed run's figures (`setting`: its batch_size, precision, placement and
        compile) from its metrics.csv and summary.json, and its check: the loss fell."""
        rows = metrics_rows(run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        self.drop_checkpoints(run_dir)
        params = int(summary["params"])
        steady = [r["train_frames_per_s"] for r in rows if r["epoch"] >= 2]
        rate = median(steady) if steady else float("nan")
        epoch_s = self.g.frames / rate
        peak = self.peaks.get(setting["precision"], float("nan"))
        mfu = 6 * params * rate / peak
        losses = [r["train_loss"] for r in rows]
        falls = len(rows) == epochs and all(map(math.isfinite, losses)) and losses[-1] < losses[0]
        self.runs[name] = {
            **setting,
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
            f"epoch {epoch_s:.1f} s = {si(rate)}frames/s, MFU {mfu:.0%}; loss "
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
        setting = {"batch_size": batch_size, "precision": self.main,
                   "placement": str(g.placements[0]), "compile": True}  # fmt: skip
        self.timing_row(name, run_dir, setting, time.perf_counter() - started,
                        int(g.compile_epochs))  # fmt: skip
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
            with output_to(log):
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
                print(f"  {key:<30} {run['epoch_s']:>15.1f} s {si(run['frames_per_s']):>11} "
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
