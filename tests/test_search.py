"""phonemlp-search: spaces and settings, two local workers, kill -9 and SIGTERM then the same
command again, pruning, two commands on one study, the report, and the Slurm route (its
sbatch script, and the same worker jobs through submitit's local executor). Storage: the
journal file (the default); RDB URLs are not tested here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from runner import BIN, run_cli

from phonemlp.errors import PhonemlpError
from phonemlp.records import read_status
from phonemlp.search.settings import parse_settings, split_arguments
from phonemlp.search.space import free_params, load_space, override

# tiny trials: a one-layer model, a few batches per epoch
FIXED = ["model.depth=1", "batch_size=256", "limit_batches=12", "wandb.mode=disabled"]


def search_args(corpus: Path, study: str, *args: str) -> list[str]:
    return [f"study={study}", "space=tiny", f"data.root={corpus}", *FIXED, *args]


def search(
    tmp: Path, *args: str, check: bool = True, installed: bool = False
) -> subprocess.CompletedProcess[str]:
    """phonemlp-search in this process (its workers are processes of their own), or the
    installed command where the test reads what the workers print."""
    return run_cli("phonemlp-search", *args, cwd=tmp, check=check, installed=installed)


def start(tmp: Path, *args: str) -> subprocess.Popen[str]:
    """phonemlp-search in the background, in its own session (killed as a whole below)."""
    return subprocess.Popen(
        [str(BIN / "phonemlp-search"), *args], cwd=tmp, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def open_study(folder: Path, name: str) -> optuna.Study:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in sorted(study.trials, key=lambda t: t.number)]


def wait_for(condition, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def write_space(path: Path, entries: dict) -> Path:
    path.write_text(yaml.safe_dump(entries))
    return path


# --- spaces and settings -------------------------------------------------------------------


def test_shipped_spaces_and_their_overrides() -> None:
    default = {p.key: p for p in load_space("default")}
    assert {"context", "model.shape", "model.depth", "model.width", "optimizer.lr"} <= set(default)
    lr = default["optimizer.lr"]
    assert lr.type == "float" and lr.log and lr.low == pytest.approx(1e-4)
    assert default["context"].step == 5
    assert "cylinder" in default["model.shape"].choices
    # a key fixed on the command line leaves the search
    free = free_params(load_space("default"), ["context=10", "model.depth=3"])
    assert "context" not in {p.key for p in free} and "model.depth" not in {p.key for p in free}
    assert override("optimizer.lr", 0.000123456789) == "optimizer.lr=0.000123456789"
    assert override("model.shape", "pyramid") == "model.shape=pyramid"
    assert override("compile", True) == "compile=true"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "float", "low": 1}, "needs high"),
        ({"type": "int", "low": 1.5, "high": 3}, "must be an integer"),
        ({"type": "float", "low": 0, "high": 1, "log": True}, "log: true needs low > 0"),
        ({"type": "categorical", "choices": []}, "non-empty list"),
        ({"type": "normal", "low": 0, "high": 1}, "needs type"),
        ({"type": "float", "low": 2, "high": 1}, "is above high"),
        ({"type": "float", "low": 0, "high": 1, "steps": 2}, "unknown field steps"),
    ],
)
def test_a_bad_space_entry_is_one_line_naming_it(tmp_path: Path, entry: dict, message: str):
    path = write_space(tmp_path / "bad.yaml", {"optimizer.lr": entry})
    with pytest.raises(PhonemlpError, match=message) as error:
        load_space(str(path))
    assert "optimizer.lr" in str(error.value) and "\n" not in str(error.value)


def test_settings_and_overrides_are_told_apart() -> None:
    own, fixed = split_arguments(["study=s", "workers=2", "slurm.partition=gpu", "epochs=3",
                                  "model=pyramid", "optimizer.lr=1e-3"])  # fmt: skip
    assert own == ["study=s", "workers=2", "slurm.partition=gpu"]
    assert fixed == ["epochs=3", "model=pyramid", "optimizer.lr=1e-3"]
    settings = parse_settings(own)
    assert settings.workers == 2 and settings.slurm == {"partition": "gpu"}
    for bad, message in [
        (["workers=two"], "workers=two: Value 'two'"),
        (["study=s", "pruner=fast"], "pruner=fast must be one of median, hyperband, none"),
        ([], "study is required"),
        (["study=a/b"], "study=a/b: use letters"),
    ]:
        with pytest.raises(PhonemlpError, match=message):
            parse_settings(bad)
    with pytest.raises(PhonemlpError, match="resume=x: each trial has its own run folder"):
        split_arguments(["study=s", "resume=x"])


def test_help_and_one_line_errors(corpus: Path, tmp_path: Path) -> None:
    text = search(tmp_path, "--help", installed=True).stdout
    for key in ("study:", "n_trials:", "workers:", "space:", "pruner:", "storage:", "dir:",
                "launcher:", "slurm.KEY", "report:"):  # fmt: skip
        assert key in text
    for args, message in [
        (search_args(corpus, "e", "epoch=2"), "phonemlp-train overrides: Could not override"),
        (search_args(corpus, "e", "space=nothing"), "space=nothing: no conf/search/nothing"),
        (["study=never", "report=true"], "study=never: no such study in"),
    ]:
        proc = search(tmp_path, *args, check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.startswith(f"phonemlp-search: error: {message}")
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "searches" / "e").exists()  # refused before the study is made


# --- two local workers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A study of 4 two-epoch trials run by 2 local workers, and the command's output."""
    tmp = tmp_path_factory.mktemp("search")
    args = search_args(corpus, "two", "n_trials=4", "workers=2", "epochs=2")
    proc = search(tmp, *args, installed=True)
    return tmp / "searches" / "two", proc.stdout


def test_two_local_workers_complete_a_study(finished: tuple[Path, str]) -> None:
    folder, output = finished
    study = open_study(folder, "two")
    assert states(study) == ["COMPLETE"] * 4
    pids = set()
    for trial in study.trials:
        run = folder / "trials" / str(trial.number)
        summary = json.loads((run / "summary.json").read_text())
        assert trial.value == pytest.approx(summary["best_dev_acc"])
        assert read_status(run)["status"] == "finished"
        assert sorted(trial.intermediate_values) == [1, 2]
        metrics = pd.read_csv(run / "metrics.csv")
        assert list(trial.intermediate_values.values()) == pytest.approx(metrics["dev_acc"])
        # the sampled values are the trial's overrides, and what the run recorded
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        assert overrides == trial.user_attrs["overrides"]
        for key, value in trial.params.items():
            assert override(key, value) in overrides
        pids.add(read_status(run)["pid"])
    assert len(pids) == 2  # both workers ran trials
    assert {"[worker 0]", "[worker 1]"} <= {line.split("]")[0] + "]" for line in output.split("\n")
                                            if line.startswith("[worker")}  # fmt: skip

    # the results: table, plot, report with the best trial as a command
    table = pd.read_csv(folder / "trials.csv")
    assert len(table) == 4 and (table["state"] == "finished").all()
    assert {"context", "model.width", "model.dropout", "optimizer.lr"} <= set(table.columns)
    assert (folder / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = study.best_trial
    command = "phonemlp-train " + " ".join(best.user_attrs["overrides"])
    assert command in output and command in (folder / "report.md").read_text()
    assert f"best: trial {best.number}, best dev accuracy {best.value:.4f}" in output
    assert "importances: " in output

    # phonemlp-ablate reads the search folder like a sweep
    proc = run_cli("phonemlp-ablate", str(folder), "plot=false", cwd=folder)
    ablation = pd.read_csv(folder / "ablations.csv")
    assert sorted(ablation["run"]) == [f"trials/{n}" for n in range(4)]
    assert (ablation["status"] == "finished").all() and "4 runs: 4 finished" in proc.stdout


def test_the_same_command_again_reruns_nothing(finished: tuple[Path, str], corpus: Path) -> None:
    folder, _ = finished
    before = {p: p.stat().st_mtime_ns for p in folder.glob("trials/*/summary.json")}
    proc = search(folder.parents[1], *search_args(corpus, "two", "n_trials=4", "workers=2",
                                                  "epochs=2"))  # fmt: skip
    assert "4 of 4 trials done" in proc.stdout and "[worker" not in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in folder.glob("trials/*/summary.json")} == before
    assert states(open_study(folder, "two")) == ["COMPLETE"] * 4

    # report=true at any time; a study continued with other overrides is refused
    report = search(folder.parents[1], "study=two", "report=true").stdout
    assert "study two: 4 of n_trials=20 done (4 finished)" in report
    proc = search(folder.parents[1], *search_args(corpus, "two", "epochs=3"), check=False)
    assert proc.returncode == 2 and "was started with the overrides" in proc.stderr


# --- kill -9, SIGTERM ----------------------------------------------------------------------


def test_kill_9_then_the_same_command_ends_with_n_trials(corpus: Path, tmp_path: Path) -> None:
    args = search_args(corpus, "k", "n_trials=3", "workers=2", "epochs=4")
    folder = tmp_path / "searches" / "k"
    process = start(tmp_path, *args)
    try:
        wait_for(lambda: len(list(folder.glob("trials/*/status.json"))) >= 2)  # both training
    finally:
        for pid in children(process.pid):  # the workers first: they would stop cleanly if
            os.kill(pid, signal.SIGKILL)  # they saw the command die first
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    study = open_study(folder, "k")
    killed = [t.number for t in study.trials]
    assert states(study) == ["RUNNING", "RUNNING"]
    assert all(read_status(folder / "trials" / str(n))["status"] == "running" for n in killed)

    proc = search(tmp_path, *args, installed=True)  # the same command
    study = open_study(folder, "k")
    by_number = {t.number: t for t in study.trials}
    for number in killed:  # marked failed, with the reason, never rerun
        assert by_number[number].state.name == "FAIL"
        assert "died" in by_number[number].user_attrs["error"]
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 3, proc.stdout
    assert len(study.trials) == 5


def test_sigterm_then_the_same_command_resumes_the_trial(corpus: Path, tmp_path: Path) -> None:
    args = search_args(corpus, "t", "n_trials=1", "workers=1", "epochs=3")
    folder = tmp_path / "searches" / "t"
    process = start(tmp_path, *args, "limit_batches=400")
    wait_for(lambda: (folder / "trials" / "0" / "metrics.csv").is_file())
    os.kill(process.pid, signal.SIGTERM)  # to the command, which passes it to its worker
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "the same command continues the study" in output
    run = folder / "trials" / "0"
    assert read_status(run)["status"] == "interrupted"
    done = len(pd.read_csv(run / "metrics.csv"))
    assert states(open_study(folder, "t")) == ["RUNNING"]

    proc = search(tmp_path, *args, "limit_batches=400", installed=True)
    assert "trial 0: resuming after" in proc.stdout
    study = open_study(folder, "t")
    assert states(study) == ["COMPLETE"]  # the same trial, continued, not a new one
    assert sorted(study.trials[0].intermediate_values) == [1, 2, 3]
    assert read_status(run)["status"] == "finished" and done < 3
    assert len(pd.read_csv(run / "metrics.csv")) == 3


# --- pruning -------------------------------------------------------------------------------


def test_pruning_stops_the_trials_that_lag(corpus: Path, tmp_path: Path) -> None:
    """lr is sane or absurdly low, nothing else varies (equal settings train alike): an
    absurd trial is pruned at its first epoch once two sane ones have finished (the median of
    their first epochs is theirs), the sane ones never. With sampler_seed=6 the random sampler
    draws sane, sane, absurd, sane, absurd."""
    space = write_space(
        tmp_path / "lr.yaml", {"optimizer.lr": {"type": "categorical", "choices": [3e-3, 1e-9]}}
    )
    args = [
        "study=p", f"space={space}", f"data.root={corpus}", *FIXED, "context=2",
        "model.width=64", "epochs=3", "n_trials=5", "workers=1", "sampler=random",
        "sampler_seed=6", "pruner=median", "pruner_startup=2", "pruner_warmup=0",
    ]  # fmt: skip
    proc = search(tmp_path, *args)
    folder = tmp_path / "searches" / "p"
    study = open_study(folder, "p")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE",
                                              "PRUNED"], proc.stdout  # fmt: skip
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    sane = [t for t in finished if t.params["optimizer.lr"] == 3e-3]
    for trial in trials:
        run = folder / "trials" / str(trial.number)
        if trial.state.name == "PRUNED":
            assert trial.params["optimizer.lr"] == 1e-9
            assert len(trial.intermediate_values) == 1  # stopped after its first epoch
            assert read_status(run)["status"] == "pruned"
            assert (run / "checkpoints" / "last.pt").is_file()
            assert max(trial.intermediate_values.values()) < min(t.value for t in sane)
        else:
            assert len(trial.intermediate_values) == 3
    table = pd.read_csv(folder / "trials.csv")
    assert (table["state"] == "pruned").sum() == [t.state.name for t in trials].count("PRUNED")

    run_cli("phonemlp-ablate", str(folder), "plot=false", cwd=tmp_path)
    ablation = pd.read_csv(folder / "ablations.csv").set_index("run")
    for trial in trials:
        row = ablation.loc[f"trials/{trial.number}"]
        if trial.state.name == "PRUNED":
            assert row["status"] == "pruned" and row["epochs_done"] == 1
        else:
            assert row["status"] == "finished" and row["epochs_done"] == 3


def test_pruner_warmup_counts_epochs() -> None:
    """pruner_warmup=N: every trial runs N epochs before the median pruner may stop it."""
    from phonemlp.search.study import make_pruner

    for warmup, first_prunable in [(0, 1), (1, 2), (2, 3)]:
        settings = parse_settings(["study=w", "pruner_startup=2", f"pruner_warmup={warmup}"])
        study = optuna.create_study(direction="maximize", pruner=make_pruner(settings))
        for _ in range(2):
            good = study.ask()
            for epoch in (1, 2, 3):
                good.report(0.9, epoch)
            study.tell(good, 0.9)
        bad = study.ask()
        pruned_at = None
        for epoch in (1, 2, 3):
            bad.report(0.1, epoch)
            if bad.should_prune():
                pruned_at = epoch
                break
        assert pruned_at == first_prunable


# --- two commands, one study ---------------------------------------------------------------


@pytest.mark.slow  # two local workers on one study (above) test the same sharing
def test_two_commands_share_one_study(corpus: Path, tmp_path: Path) -> None:
    args = search_args(corpus, "shared", "n_trials=4", "workers=1", "epochs=2")
    first, second = start(tmp_path, *args), start(tmp_path, *args)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    folder = tmp_path / "searches" / "shared"
    study = open_study(folder, "shared")
    assert states(study) == ["COMPLETE"] * 4  # exactly n_trials between them
    ran = [{int(line.split("trial ")[1].split(" ")[0]) for line in out.splitlines()
            if " finished: best dev acc" in line} for out in outputs]  # fmt: skip
    assert ran[0] and ran[1] and not ran[0] & ran[1]  # both worked, never on the same trial
    assert ran[0] | ran[1] == {0, 1, 2, 3}


# --- the Slurm route -----------------------------------------------------------------------


def test_slurm_jobs_get_the_launcher_settings(tmp_path: Path, monkeypatch) -> None:
    """The sbatch script of a worker job (no Slurm here: a dummy srun lets submitit build it)."""
    from phonemlp.search.launch import make_executor

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    settings = parse_settings(["study=s", "workers=4", "slurm.partition=gpu",
                               "slurm.timeout_min=600", "slurm.mem_gb=64"])  # fmt: skip
    executor = make_executor(settings, tmp_path / "searches" / "s", "slurm")
    script = executor._executor._make_submission_file_text("python -m worker", "0")
    expected = [
        "--partition=gpu",
        "--time=600",
        "--mem=64GB",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--signal=TERM@120",
        "--job-name=phonemlp-search-s",
    ]
    for line in expected:
        assert f"#SBATCH {line}\n" in script
    assert f"{tmp_path / 'searches' / 's' / '.submitit'}" in script
    # the signal is SIGTERM (phonemlp-train saves and stops), not submitit's USR2
    assert "USR2" not in script


def test_submitit_local_jobs_run_the_workers(corpus: Path, tmp_path: Path) -> None:
    """launcher=submitit_local: the worker jobs of launcher=slurm, as local processes."""
    args = search_args(corpus, "jobs", "n_trials=2", "workers=2", "epochs=1")
    proc = search(tmp_path, *args, "launcher=submitit_local", "slurm.timeout_min=10")
    assert "submitted 2 worker jobs" in proc.stdout
    folder = tmp_path / "searches" / "jobs"
    study = open_study(folder, "jobs")
    assert states(study) == ["COMPLETE"] * 2
    assert len({read_status(folder / "trials" / str(n))["pid"] for n in (0, 1)}) == 2
    assert (folder / "trials.csv").is_file()


def test_help_is_the_file_the_defaults_come_from() -> None:
    """conf/search_command.yaml gives --help and the defaults; it has every key of the schema."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    from phonemlp.search.settings import SearchSettings, search_defaults, search_help

    defaults = OmegaConf.to_object(search_defaults())
    assert {f.name for f in fields(SearchSettings)} == set(
        OmegaConf.to_container(
            OmegaConf.load(Path(__file__).parents[1] / "conf" / "search_command.yaml")
        )
    )
    text = search_help()
    assert text.startswith("usage: phonemlp-search study=NAME")
    for field in fields(SearchSettings):
        assert f"\n{field.name}: " in text
    assert defaults.n_trials == 20 and defaults.pruner == "median"
