"""The package installs, its YAML configs are found, and every config group option composes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig

from phonemlp.model import build_model, count_params
from phonemlp.phonemes import NUM_CLASSES
from phonemlp.schedule import Schedule

REPO = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
INPUT_DIM = 41 * 28  # context 20 on 28-dim features
NOT_SOURCE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*venv", "outputs",
    "multirun", "wandb", "*.pt", "*.npy",
)  # fmt: skip


def config(*overrides: str) -> DictConfig:
    with initialize_config_module(config_module="phonemlp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command; fail with its output unless it exits 0; return its stdout."""
    proc = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{command} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# --- config groups -------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = config()
    assert cfg.model.shape == "cylinder"
    assert cfg.optimizer._target_ == "torch.optim.AdamW"
    assert cfg.scheduler.name == "cosine"
    assert cfg.data.root is None and cfg.data.train_split == "train-clean-100"
    assert 0 <= cfg.context <= 50


EXPECTED_WIDTHS = {
    "cylinder": [1024, 1024, 1024],
    "pyramid": [1024, 768, 512, 256],
    "inverse_pyramid": [256, 512, 768, 1024],
    "diamond": [256, 1024, 1024, 256],
}


@pytest.mark.parametrize("shape", list(EXPECTED_WIDTHS))
def test_model_options(shape: str) -> None:
    cfg = config(f"model={shape}")
    cylinder = config().model
    assert cfg.model.shape == shape
    for key in ("width", "activation", "norm", "dropout", "init", "max_params"):
        assert cfg.model[key] == cylinder[key], key  # inherited from cylinder.yaml
    assert cfg.model.max_params == 20_000_000

    model = build_model(cfg.model, INPUT_DIM, NUM_CLASSES).eval()
    assert model.widths == EXPECTED_WIDTHS[shape]
    assert model.num_params == count_params(INPUT_DIM, model.widths, NUM_CLASSES)
    with torch.no_grad():
        assert model(torch.randn(5, INPUT_DIM)).shape == (5, NUM_CLASSES)


EXPECTED_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "nesterov": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}


@pytest.mark.parametrize("name", list(EXPECTED_OPTIMIZERS))
def test_optimizer_options(name: str) -> None:
    cfg = config(f"optimizer={name}")
    optimizer = instantiate(cfg.optimizer)(torch.nn.Linear(4, 3).parameters())
    assert type(optimizer) is EXPECTED_OPTIMIZERS[name]
    group = optimizer.param_groups[0]
    assert group["lr"] == cfg.optimizer.lr > 0
    if name in ("sgd", "nesterov"):
        assert group["nesterov"] is (name == "nesterov")
        assert group["momentum"] > 0
    if name == "nesterov":
        assert cfg.optimizer.nesterov is True
        assert cfg.optimizer.momentum == config("optimizer=sgd").optimizer.momentum


EXPECTED_SCHEDULER_KEYS = {
    "constant": set(),
    "step": {"step_epochs", "gamma"},
    "plateau": {"factor", "patience", "threshold", "min_lr_ratio"},
    "exponential": {"gamma"},
    "cosine": {"min_lr_ratio"},
}


@pytest.mark.parametrize("name", list(EXPECTED_SCHEDULER_KEYS))
def test_scheduler_options(name: str) -> None:
    cfg = config(f"scheduler={name}")
    assert cfg.scheduler.name == name
    assert EXPECTED_SCHEDULER_KEYS[name] <= set(cfg.scheduler)
    optimizer = instantiate(cfg.optimizer)(torch.nn.Linear(4, 3).parameters())
    schedule = Schedule(cfg.scheduler, optimizer, steps_per_epoch=10, epochs=4)
    assert schedule.set_lr(0) == pytest.approx(cfg.optimizer.lr)  # no warmup by default
    last = schedule.set_lr(39)
    if name in ("constant", "plateau"):  # plateau only moves on dev accuracy
        assert last == pytest.approx(cfg.optimizer.lr)
    else:
        assert last < cfg.optimizer.lr


# --- the console scripts -------------------------------------------------------------------


def test_train_prints_its_config(tmp_path: Path) -> None:
    out = run(BIN / "phonemlp-train", "--cfg", "job", "model=pyramid", "context=7", cwd=tmp_path)
    assert "context: 7" in out and "model:" in out and "shape: pyramid" in out
    assert "optimizer:" in out and "scheduler:" in out
    assert not any(tmp_path.iterdir())  # printing the config writes no run folder


@pytest.mark.parametrize("program", ["phonemlp-train", "phonemlp-predict"])
def test_help(program: str, tmp_path: Path) -> None:
    out = run(BIN / program, "--help", cwd=tmp_path)
    expected = {"phonemlp-train": "model: cylinder, diamond", "phonemlp-predict": "ckpt:"}
    assert expected[program] in out


# --- the built wheel, installed into a fresh environment -----------------------------------


def test_wheel_ships_the_configs_and_runs_installed(tmp_path: Path) -> None:
    # Build from a copy, so that build/ and *.egg-info never land in the working tree.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    dist = tmp_path / "dist"
    build = ["pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source]
    run(sys.executable, "-m", *build, cwd=tmp_path)
    (wheel,) = dist.glob("phonemlp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"phonemlp/conf/config.yaml", "phonemlp/conf/predict.yaml"} | {
        f"phonemlp/conf/{group}/{option}.yaml"
        for group, options in {
            "data": ["hw1p2"],
            "model": list(EXPECTED_WIDTHS),
            "optimizer": list(EXPECTED_OPTIMIZERS),
            "scheduler": list(EXPECTED_SCHEDULER_KEYS),
        }.items()
        for option in options
    }
    assert expected <= names, sorted(expected - names)
    assert "phonemlp/conf/hydra/job_logging/phonemlp.yaml" in names
    sweep_configs = {
        "phonemlp/conf/experiment/subset_search.yaml",
        "phonemlp/conf/experiment/full.yaml",
        "phonemlp/conf/experiment/hw1p2.yaml",
        "phonemlp/conf/search/default.yaml",
        "phonemlp/conf/hydra/launcher/slurm.yaml",
    }
    assert sweep_configs <= names, sorted(sweep_configs - names)
    assert not any(name.startswith(("tests/", "conf/", "scripts/")) for name in names)

    # A fresh venv that borrows this one's dependencies through a plain path line in a .pth
    # file. Such a line does not run that folder's own .pth files, so the editable install
    # of phonemlp (an import hook started by a .pth file) must not come along.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(run(python, "-c", where, cwd=tmp_path, env=env).strip())
    borrowed = sysconfig.get_paths()["purelib"]
    (purelib / "borrowed_dependencies.pth").write_text(borrowed + "\n")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    probe = (
        "import importlib.util, sys, torch, hydra; "
        "print(importlib.util.find_spec('phonemlp') is None); "
        "print(any('editable' in repr(f).lower() for f in sys.meta_path)); "
        "print(torch.__file__)"
    )
    before = run(python, "-c", probe, cwd=cwd, env=env).split()
    assert before[:2] == ["True", "False"], before  # no phonemlp leaks in; no editable hook
    assert before[2].startswith(borrowed)  # the borrowed torch

    # pip also sees the borrowed folder's (editable) phonemlp metadata; --ignore-installed
    # keeps it from ever trying to uninstall that one.
    install = ["pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel]
    run(python, "-m", *install, cwd=cwd, env=env)
    location = run(python, "-c", "import phonemlp; print(phonemlp.__file__)", cwd=cwd, env=env)
    assert Path(location.strip()).is_relative_to(venv)
    assert not Path(location.strip()).is_relative_to(REPO)

    out = run(venv / "bin" / "phonemlp-train", "--cfg", "job", "model=diamond", cwd=cwd, env=env)
    assert "shape: diamond" in out and "context:" in out
    assert "_target_: torch.optim.AdamW" in out
    out = run(venv / "bin" / "phonemlp-predict", "--cfg", "job", "ckpt=x.pt", cwd=cwd, env=env)
    assert "ckpt: x.pt" in out and "label_format: symbol" in out
    out = run(venv / "bin" / "phonemlp-ablate", "--help", cwd=cwd, env=env)
    assert "ablations.csv" in out
    out = run(venv / "bin" / "phonemlp-train", "--cfg", "job", "experiment=full", cwd=cwd, env=env)
    assert "fraction: 1.0" in out and "epochs: 30" in out
    assert not any(cwd.iterdir())
