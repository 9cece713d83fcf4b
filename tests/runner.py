"""Running the installed console scripts from tests, and reading what a run wrote."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

BIN = Path(sys.executable).parent

TINY = ["model.depth=1", "model.width=64", "context=3", "epochs=1", "batch_size=256"]


def run_cli(
    program: str, *args: str, cwd: Path, check: bool = True, installed: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a command; with `check`, fail with its output if it fails.

    phonemlp-train (one run), phonemlp-predict and phonemlp-search run in this process through
    their Python entry points (no interpreter start-up; a search's workers are still processes
    of their own), with the command's output and exit status; `installed=True`, sweeps (-m)
    and the other commands run the installed console script."""
    if installed or program not in IN_PROCESS or "-m" in args:
        proc = subprocess.run(
            [str(BIN / program), *args], cwd=cwd, capture_output=True, text=True, timeout=600
        )
    else:
        proc = IN_PROCESS[program](list(args), cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{program} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def train_run(run_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """phonemlp-train into `run_dir` (wandb off unless overridden), in this process."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    return run_cli(
        "phonemlp-train",
        "wandb.mode=disabled",
        f"hydra.run.dir={run_dir}",
        *args,
        cwd=run_dir.parent,
        check=check,
    )


def _in_process(
    program: str, work: Callable[[], object], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`work()` as the console script would run it: its output, and exit status 0, 2 (a
    problem the user can fix, as one line on stderr) or a signal's 128 + n."""
    from phonemlp.errors import user_error_message

    out, err = io.StringIO(), io.StringIO()
    status = 0
    before = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                work()
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else 1
            except Exception as error:
                message = user_error_message(error)
                if message is None:
                    raise
                print(f"{program}: error: {message}", file=sys.stderr)
                status = 2
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess([program], status, out.getvalue(), err.getvalue())


def _train(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    from phonemlp.api import train

    run_dir = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")), None)
    overrides = [a for a in args if not a.startswith("hydra.")]
    return _in_process("phonemlp-train", lambda: train(overrides, run_dir), cwd)


def _predict(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    from phonemlp.api import compose, run_logging
    from phonemlp.prediction import predict

    def work() -> object:
        with run_logging(None):
            return predict(compose("predict", args))

    return _in_process("phonemlp-predict", work, cwd)


def _search(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    from phonemlp.search import main

    return _in_process("phonemlp-search", lambda: main(args), cwd)


IN_PROCESS = {"phonemlp-train": _train, "phonemlp-predict": _predict, "phonemlp-search": _search}


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv")


def files(root: Path, split: str, kind: str = "mfcc") -> list[Path]:
    """A split's `.npy` files of one kind (mfcc or transcript), sorted by name."""
    return sorted((root / split / kind).glob("*.npy"))


def rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replace a `.npy` file's array by `change` of it (to break a corpus on purpose)."""
    np.save(path, change(np.load(path)), allow_pickle=True)
