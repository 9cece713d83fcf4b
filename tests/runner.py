"""Running the installed console scripts from tests, and reading what a run wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

BIN = Path(sys.executable).parent

TINY = ["model.depth=1", "model.width=64", "context=3", "epochs=1", "batch_size=256"]


def run_cli(
    program: str, *args: str, cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run an installed console script; with `check`, fail with its output if it fails."""
    proc = subprocess.run(
        [str(BIN / program), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{program} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def train_run(run_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """phonemlp-train into `run_dir` (wandb off unless overridden)."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    return run_cli(
        "phonemlp-train",
        "wandb.mode=disabled",
        f"hydra.run.dir={run_dir}",
        *args,
        cwd=run_dir.parent,
        check=check,
    )


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
