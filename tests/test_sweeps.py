"""Sweeps: multirun jobs with their own records, failures that do not stop a sweep, the
ablation table and plot, the submitit launcher, and the sweep configs (phonemlp-search, the
Optuna search: test_search.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from runner import BIN, TINY, metrics, run_cli, summary, train_run

from phonemlp.ablate import write_ablations
from phonemlp.records import read_status, run_status
from phonemlp.runtime import DEFAULT_THREADS, configure

SMALL = [o for o in TINY if not o.startswith("context=")] + ["limit_batches=20"]
RESULTS = ["params", "best_dev_acc", "best_epoch", "epochs_done", "s_per_epoch", "status"]


def sweep(tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """phonemlp-train -m into tmp/sweep (wandb off unless overridden)."""
    tmp.mkdir(parents=True, exist_ok=True)
    return run_cli(
        "phonemlp-train",
        "-m",
        f"hydra.sweep.dir={tmp / 'sweep'}",
        "wandb.mode=disabled",
        *args,
        cwd=tmp,
        check=check,
    )


def jobs(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep, in job order."""
    found = [p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()]
    return sorted(found, key=lambda p: int(p.name.split("_")[0]))


def config(*overrides: str) -> DictConfig:
    with initialize_config_module(config_module="phonemlp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


# --- a 2x2 multirun and its table ----------------------------------------------------------


@pytest.fixture(scope="module")
def grid(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model=pyramid,diamond x context=2,3 on the demo corpus, one short epoch each."""
    tmp = tmp_path_factory.mktemp("grid")
    sweep(tmp, f"data.root={corpus}", *SMALL, "model=pyramid,diamond", "context=2,3")
    return tmp / "sweep"


def test_multirun_gives_a_folder_and_records_per_job(grid: Path) -> None:
    runs = jobs(grid)
    assert len(runs) == 4
    seen = set()
    for run in runs:
        overrides = (run / ".hydra" / "overrides.yaml").read_text()
        model = "pyramid" if "model=pyramid" in overrides else "diamond"
        context = 2 if "context=2" in overrides else 3
        seen.add((model, context))
        assert summary(run)["epochs"] == 1 and len(metrics(run)) == 1
        assert read_status(run)["status"] == "finished"
        assert run_status(run) == "finished"
        assert (run / "checkpoints" / "best.pt").is_file()
        assert (run / "train.log").is_file()
        assert "data.root" not in run.name  # excluded from job folder names
    assert seen == {(m, c) for m in ("pyramid", "diamond") for c in (2, 3)}


def test_sweep_ends_with_its_ablation_table(grid: Path) -> None:
    """The 4-row table (written by the sweep itself): the swept keys are the only varying ones."""
    for name in ("ablations.csv", "ablations.md", "ablations.png"):
        assert (grid / name).is_file()
    table = pd.read_csv(grid / "ablations.csv")
    assert list(table.columns) == ["run", "model", "context", *RESULTS]
    assert len(table) == 4 and (table["status"] == "finished").all()
    assert table["best_dev_acc"].is_monotonic_decreasing
    assert (table["epochs_done"] == 1).all() and (table["best_epoch"] == 1).all()
    for _, row in table.iterrows():
        run = grid / row["run"]
        assert row["best_dev_acc"] == pytest.approx(summary(run)["best_dev_acc"])
        assert row["params"] == summary(run)["params"]
        assert row["s_per_epoch"] == pytest.approx(metrics(run)["epoch_s"].mean())
        assert f"model={row['model']}" in row["run"] and f"context={row['context']}" in row["run"]
    assert (grid / "ablations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (grid / "ablations.md").read_text().splitlines()
    assert markdown[0].startswith("| run | model | context | params | best_dev_acc |")
    assert len(markdown) == 2 + 4


def test_a_sweep_job_gives_the_same_figures_as_the_run_alone(
    grid: Path, corpus: Path, tmp_path: Path
) -> None:
    """Nothing leaks from one job to the next: the last job equals a fresh process."""
    last = jobs(grid)[-1]
    overrides = yaml.safe_load((last / ".hydra" / "overrides.yaml").read_text())
    overrides = [o for o in overrides if not o.startswith("wandb.mode=")]
    assert "model=diamond" in overrides and "context=3" in overrides
    alone = tmp_path / "alone"
    train_run(alone, *overrides)
    assert metrics(alone)["dev_acc"].tolist() == metrics(last)["dev_acc"].tolist()
    assert metrics(alone)["train_loss"].tolist() == metrics(last)["train_loss"].tolist()


# --- failures in a sweep, wandb per job ----------------------------------------------------


def test_a_failed_job_is_recorded_and_the_sweep_goes_on(corpus: Path, tmp_path: Path) -> None:
    proc = sweep(tmp_path, f"data.root={corpus}", *SMALL, "context=2,99,3", "wandb.mode=offline")
    assert "phonemlp-train: error: context=99 must be an integer from 0 to 50" in proc.stdout
    sweep_dir = tmp_path / "sweep"
    first, failed, last = jobs(sweep_dir)
    record = read_status(failed)
    assert record["status"] == "failed" and "context=99" in record["error"]
    assert not (failed / "summary.json").exists()
    for run in (first, last):
        assert read_status(run)["status"] == "finished" and summary(run)["epochs"] == 1
    table = pd.read_csv(sweep_dir / "ablations.csv")
    assert table["status"].tolist() == ["finished", "finished", "failed"]
    assert "context=99 must be" in (sweep_dir / "ablations.md").read_text()

    # each job its own wandb run, grouped by the sweep, closed before the next job began
    group = f"{sweep_dir.parent.name}/{sweep_dir.name}"
    ids = []
    for run in (first, last):
        record = read_status(run)
        assert record["wandb_group"] == group
        (wandb_run,) = (run / "wandb").glob("offline-run-*")
        assert wandb_run.name.endswith(record["wandb_id"])
        ids.append(record["wandb_id"])
        assert "finishing run" in (wandb_run / "logs" / "debug.log").read_text()
    assert ids[0] != ids[1]
    assert not (failed / "wandb").exists()  # it failed before its run began


def test_threads_zero_restores_torch_default() -> None:
    configure(torch.device("cpu"), 1)
    assert torch.get_num_threads() == 1
    configure(torch.device("cpu"), 0)  # the next job of a sweep, with the default threads=0
    assert torch.get_num_threads() == DEFAULT_THREADS


# --- phonemlp-ablate on failed, running and killed runs ------------------------------------


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_ablate_marks_failed_running_and_killed_runs(
    grid: Path, corpus: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    failed = runs / "failed"
    proc = train_run(failed, f"data.root={corpus}", *TINY, "model.max_params=1000", check=False)
    assert proc.returncode == 2  # a single run keeps its one-line error and exit status 2
    assert proc.stderr.strip().startswith("phonemlp-train: error: ")
    assert read_status(failed)["status"] == "failed"
    assert "max_params" in read_status(failed)["error"]

    unfinished = runs / "unfinished"
    unfinished.mkdir(parents=True)
    args = [f"data.root={corpus}", *TINY, "epochs=1000", "limit_batches=2"]
    command = [str(BIN / "phonemlp-train"), "wandb.mode=disabled", f"hydra.run.dir={unfinished}"]
    process = subprocess.Popen(
        [*command, *args], cwd=runs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: (unfinished / "metrics.csv").is_file())
        assert run_status(unfinished) == "running"
        table = write_ablations([runs], plot=False).table.set_index("run")
        assert table.loc["unfinished", "status"] == "running"
        assert table.loc["unfinished", "epochs_done"] >= 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert read_status(unfinished)["status"] == "running"  # what the killed run left
    assert read_status(unfinished)["host"] == socket.gethostname()
    assert run_status(unfinished) == "killed"

    proc = run_cli("phonemlp-ablate", str(runs), str(grid), cwd=tmp_path)
    table = pd.read_csv(runs / "ablations.csv")
    assert len(table) == 2 + 4
    status = dict(zip(table["run"], table["status"], strict=True))
    assert status["failed"] == "failed" and status["unfinished"] == "killed"
    done = metrics(unfinished)
    killed = table.set_index("run").loc["unfinished"]
    assert killed["epochs_done"] == len(done) >= 1
    assert killed["best_dev_acc"] == pytest.approx(done["dev_acc"].max())
    assert pd.isna(table.set_index("run").loc["failed", "best_dev_acc"])
    assert table["run"].iloc[-1] == "failed"  # no accuracy: last
    assert {"model", "context", "model.max_params", "epochs"} <= set(table.columns)
    assert "limit_batches" in table.columns  # 2 in the killed run, 20 in the grid, 0 else
    assert "data.root" not in table.columns and "batch_size" not in table.columns
    assert "killed" in proc.stdout and "failed" in proc.stdout
    assert "max_params" in (runs / "ablations.md").read_text()
    assert (runs / "ablations.png").is_file()


def test_ablate_refuses_a_folder_without_runs(tmp_path: Path) -> None:
    proc = run_cli("phonemlp-ablate", str(tmp_path), cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("phonemlp-ablate: error: no runs under")


# --- submitit ----------------------------------------------------------------------------


def test_submitit_local_runs_two_jobs(corpus: Path, tmp_path: Path) -> None:
    sweep(tmp_path, "hydra/launcher=submitit_local", f"data.root={corpus}", *SMALL, "context=2,3")
    sweep_dir = tmp_path / "sweep"
    runs = jobs(sweep_dir)
    assert len(runs) == 2
    records = [read_status(run) for run in runs]
    assert [r["status"] for r in records] == ["finished", "finished"]
    assert records[0]["pid"] != records[1]["pid"]  # each job in its own process
    assert all(summary(run)["epochs"] == 1 for run in runs)
    assert len([p for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()]) == 2
    assert len(pd.read_csv(sweep_dir / "ablations.csv")) == 2


# --- the sweep configs ---------------------------------------------------------------------


def test_experiment_overlays() -> None:
    subset = config("experiment=subset_search")
    assert subset.data.fraction == 0.1 and subset.epochs < config().epochs
    full = config("experiment=full")
    assert full.data.fraction == 1.0 and full.epochs > config().epochs
    assert config("experiment=full", "epochs=3").epochs == 3  # the command line wins


@pytest.mark.parametrize(
    ("launcher", "target", "keys"),
    [
        ("slurm", "SlurmLauncher", {"partition": None, "gpus_per_node": 1, "mem_gb": 32}),
        ("submitit_slurm", "SlurmLauncher", {"gpus_per_node": None}),  # the bare plugin
        ("submitit_local", "LocalLauncher", {"nodes": 1}),
        ("joblib", "JoblibLauncher", {"n_jobs": -1}),
    ],
)
def test_launcher_options(launcher: str, target: str, keys: dict) -> None:
    settings = config(f"hydra/launcher={launcher}").hydra.launcher
    assert settings._target_.endswith(target)
    for key, value in keys.items():
        assert settings[key] == value
    assert "timeout_min" in settings or launcher == "joblib"
    if launcher == "slurm":  # SIGTERM before the time limit: phonemlp-train saves and stops
        assert settings.additional_parameters.signal == "TERM@120"


def test_status_of_a_run_from_another_host_is_taken_as_it_says(tmp_path: Path) -> None:
    run = tmp_path / "elsewhere"
    (run / ".hydra").mkdir(parents=True)
    record = {"status": "running", "host": "a-slurm-node", "pid": os.getpid() + 10**7}
    (run / "status.json").write_text(json.dumps(record))
    assert run_status(run) == "running"  # its pid means nothing on this host
    record["host"] = socket.gethostname()
    (run / "status.json").write_text(json.dumps(record))
    assert run_status(run) == "killed"
